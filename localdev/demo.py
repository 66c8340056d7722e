"""`make demo`: one night of the DAG against the emulator's demo world, then what came out.

Starts the emulator (demo profile, clock at the morning after the night), an Airflow on
SQLite in `.airflow/demo/`, runs `dials_ingest` for that night with `airflow dags test`,
stops the emulator and prints runs ingested and waiting, files written, the completeness
verdict and how to read the output (`dialsflow.read`). Each call starts from scratch
(`.airflow/demo/` and `out/demo/` are recreated), so it always shows a first night.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import time
from pathlib import Path

import orjson
import pyarrow.parquet as pq

from dialsflow.store.layout import certification_table, conditions_dir
from dialsflow_emulator.process import EmulatorProcess

from .airflow_home import ROOT, LocalAirflow, state_home

# The morning after the demo season's last run: four Golden releases are out (the latest
# certifies runs that ended weeks to months earlier), the newer runs wait for the next one,
# and one certified run has a DIALS file stuck STARTED for months.
NIGHT = "2024-09-01T12:00:00+00:00"


def summarize(output_root: Path) -> list[str]:
    """Plain lines from the completeness reports and the parquet files under output_root."""
    lines = []
    for report_path in sorted(output_root.glob("*/_reports/*.json")):
        report = orjson.loads(report_path.read_bytes())
        out = report_path.parent.parent
        files = sorted(p for p in out.rglob("run_*.parquet")
                       if not any(part.startswith("_") for part in p.relative_to(out).parts))
        written = sorted({run for unit in report["ingested"] for run in unit["written"]})
        completeness = report.get("completeness") or {}
        gaps = [(u["me"].rsplit("/", 1)[-1], r["run"], r["counts"]["upstream_gap"])
                for u in completeness.get("units", []) for r in u["runs"]
                if r["counts"]["upstream_gap"]]
        plan = report.get("plan") or {}
        counts = plan.get("counts", {})
        waiting = [r for r in plan.get("runs", []) if r["status"] == "waiting"]
        lines += [
            f"job {report['job']}: certification {', '.join(report['certification']['files'])}",
            f"  runs ingested: {len(written)} ({_runs(written)}) × "
            f"{len(report['ingested'])} dataset × ME units",
            f"  runs × datasets: {counts.get('complete', 0)} complete, {counts.get('due', 0)} "
            f"due, {counts.get('waiting', 0)} waiting, {counts.get('excluded', 0)} excluded "
            "(dialsflow plan lists each with its reason)",
            *(f"    waiting {r['run']}: {r['reason']}" for r in waiting[:3]),
            *(f"    stuck upstream: run {s['run']}: {s['files']} DIALS file(s) not settled "
              f"since {s['since']} (ingested with the gap)" for s in plan.get("stuck", [])),
            *(f"    failed upstream: run {f['run']}: DIALS gave up on "
              f"{', '.join(f'{n} {k}' for k, n in f['files'].items())} file(s)"
              for f in plan.get("failed_upstream", [])),
            f"  files written: {len(files)} parquet files, "
            f"{sum(p.stat().st_size for p in files) / 1e6:.1f} MB under {out}",
            *_annotations(out, report),
            f"  completeness:  {report['verdict']}",
        ]
        lines += [f"    upstream gap: {me} run {run}: DIALS lacks {n} LS that DBS has"
                  for me, run, n in gaps[:6]]
        if len(gaps) > 6:
            lines.append(f"    … {len(gaps) - 6} more in {report_path}")
        lines.append(f"  report:        {report_path}")
    return lines


def _annotations(out: Path, report: dict) -> list[str]:
    """What sits beside the maps: OMS conditions and LS certification."""
    lines = []
    conditions = report.get("conditions") or {}
    if conditions.get("enabled"):
        tables = len(list(conditions_dir(out).glob("run_*.parquet")))
        lines.append(f"  conditions:    OMS per-LS tables of {tables} runs in "
                     f"{conditions_dir(out)}; {conditions['map_ls_without_oms_row']} map LS "
                     "without an OMS row")
    if certification_table(out).is_file():
        flags = pq.read_table(certification_table(out), columns=["golden", "dcs"])
        golden, dcs = (sum(flags.column(c).to_pylist()) for c in ("golden", "dcs"))
        lines.append(f"  certification: {golden} of {flags.num_rows} LS Golden, {dcs} DCS-only "
                     f"(per LS in {certification_table(out)})")
    return lines


def _runs(runs: list[int]) -> str:
    return ", ".join(map(str, runs)) if len(runs) <= 6 else f"{runs[0]} … {runs[-1]}"


READ_IT = """\
Read it (numpy maps of the Golden LS with their OMS conditions; no pandas):
  .venv/bin/python - <<'PY'
import dialsflow
me = ("PixelPhase1/Phase1_MechanicalView/PXBarrel/"
      "digi_occupancy_per_SignedModuleCoord_per_SignedLadderCoord_PXLayer_1")
m = dialsflow.read("{root}/demo_tracker", "/ZeroBias/Run2024C-PromptReco-v1/DQMIO", me,
                   certified="golden", conditions=("pileup", "bpix_ready"))
print(m.values.shape, "maps of", len(set(m.run_number)), "runs; mean pileup",
      round(float(m.conditions.column("pileup").to_numpy().mean()), 1))
PY
  Whole tree, any tool: duckdb.sql("SELECT me, count(*) FROM '{root}/*/*/*/*/run_*.parquet'
  GROUP BY me"); per-LS conditions in {root}/<job>/_conditions/oms/, flags in
  {root}/<job>/_certification/lumis.parquet (README, "Reading the output").
"""


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m localdev.demo", description=__doc__)
    p.add_argument("--home", type=Path, default=state_home("demo"))
    p.add_argument("--output", type=Path, default=ROOT / "out" / "demo")
    args = p.parse_args(argv)
    for folder in (args.home, args.output):
        shutil.rmtree(folder, ignore_errors=True)
    args.home.mkdir(parents=True)
    t0 = time.monotonic()
    with EmulatorProcess("--now", NIGHT, log_path=args.home / "emulator.log") as emu:
        print(f"demo: emulator (demo world, clock {NIGHT}) on {emu.url}", flush=True)
        airflow = LocalAirflow(args.home / "home", emu, args.output)
        airflow.setup()
        print(f"demo: Airflow on SQLite in {airflow.home}; running dials_ingest for the "
              f"night of {NIGHT[:10]} …", flush=True)
        result = airflow.dags_test(NIGHT)
    (args.home / "dags_test.log").write_text(result.stdout + result.stderr)
    state = "succeeded" if result.returncode == 0 else "FAILED"
    print(f"\ndemo: DAG run {state} in {time.monotonic() - t0:.0f} s "
          f"(full log: {args.home / 'dags_test.log'})\n")
    print("\n".join(summarize(args.output)))
    print()
    print(READ_IT.format(root=args.output))
    return result.returncode


if __name__ == "__main__":
    sys.exit(main())
