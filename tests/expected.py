"""What discovery should say of each run, computed from the emulator's truth alone."""

from __future__ import annotations

from datetime import timedelta

from dialsflow_emulator.world import build_world, utc

ZB = "/ZeroBias/Run2024C-PromptReco-v1/DQMIO"
#: DIALS file-index statuses of files that will not change any more.
SETTLED = ("FINISHED", "FILE_NOT_AVAILABLE", "COPY_ERROR", "ROOTFILE_ERROR", "PARSING_ERROR")


def statuses_from_truth(truth: dict, dataset: str = ZB, *, certified: set[int] | None = None,
                        stuck_hours: float = 48.0) -> dict[int, str]:
    """Run → the status a job with only the `stable_beam` OMS filter gives it in `dataset`
    at the truth's clock (nothing in the manifest); certified = the Golden release in force
    unless given."""
    now = utc(truth["now"])
    golden = certified if certified is not None else \
        {int(r) for r in truth["certification"]["golden_runs"]}
    last = max(golden, default=0)
    runs_of = next(d for d in truth["datasets"] if d["dataset"] == dataset)["runs"]
    out = {}
    for r in truth["runs"]:
        n = r["run_number"]
        if not r["ended"]:
            out[n] = "waiting"
        elif not r["stable_beam"]:
            out[n] = "excluded"
        elif n not in golden:
            out[n] = "waiting" if n > last else "excluded"
        else:
            files = [f for f in runs_of.get(str(n), {}).get("files", []) if f["valid"]]
            if not files:
                ended_long_ago = now - utc(r["end_time"]) >= timedelta(days=7)
                out[n] = "excluded" if ended_long_ago else "waiting"
                continue
            moving = [f for f in files if f["status"] not in SETTLED]
            since = min((utc(runs_of[str(n)]["dbs_registered_at"]),), default=now)
            stuck = moving and now - since >= timedelta(hours=stuck_hours)
            out[n] = "due" if not moving or stuck else "waiting"
    return out


def due_runs(truth: dict, dataset: str = ZB) -> list[int]:
    """The runs `statuses_from_truth` says are due, ascending."""
    return sorted(r for r, s in statuses_from_truth(truth, dataset).items() if s == "due")


def morning_after_release(index: int) -> str:
    """Noon UTC the day after the demo world's `index`-th cumulative Golden release: a night
    whose manual run (data interval ending 03:00 that day) sees that release in force."""
    releases = sorted(c.published_at for c in build_world("demo", 1).cert_files
                      if "/Cert_" in c.path and c.path.endswith("_Golden.json"))
    day = releases[index] + timedelta(days=1)
    return day.replace(hour=12, minute=0, second=0, microsecond=0).isoformat()
