"""The DAG run's note: a line per job, verdict first, short names, Airflow's size limit."""

from __future__ import annotations

from dialsflow.airflow.run_note import LIMIT, job_verdict, note_text

DS = "/ZeroBias/Run2024C-PromptReco-v1/DQMIO"
ME = "PixelPhase1/Phase1_MechanicalView/PXBarrel/digi_occupancy_PXLayer_2"


def test_a_line_per_job_verdict_first_with_its_first_failures() -> None:
    failures = [f"ingestion failed for {DS} × {ME} (see its mapped task log)",
                f"{DS} × {ME} run 379433: DIALS lacks 40% of the DBS lumisections",
                "run 379439: no per-LS OMS conditions table (see the conditions task log)"]
    text = note_text({"demo_tracker": job_verdict("failed", failures),
                      "demo_ecal": job_verdict("complete", [])}, ["completeness"])
    assert text == (
        "**demo_tracker**: failed — ingestion failed for ZeroBias/Run2024C-PromptReco-v1 × "
        "digi_occupancy_PXLayer_2 (see its mapped task log); ZeroBias/Run2024C-PromptReco-v1"
        " × digi_occupancy_PXLayer_2 run 379433: DIALS lacks 40% of the DBS lumisections "
        "(+1 more on the DIALS ingestion page)\n\n**demo_ecal**: complete")


def test_without_verdicts_the_failed_tasks_are_named() -> None:
    assert note_text(None, ["load_config", "completeness"]) == (
        "**no verdict**: completeness, load_config failed (see its log)")
    assert note_text({}, []) == "**no verdict**: the completeness task did not report"


def test_never_longer_than_airflow_keeps() -> None:
    many = {f"job_{i}": job_verdict("failed", [f"{DS} × {ME} run {i}: " + "x" * 300] * 3)
            for i in range(10)}
    text = note_text(many, [])
    assert len(text) == LIMIT and text.endswith("…") and text.startswith("**job_0**: failed")
