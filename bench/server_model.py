"""A backfill of EB occupancy maps under DIALS' capacity: the server model on vs off.

One emulator (bench profile, gzip on) serves every case; between cases only its DIALS
server model changes (`PUT /_emulator/server`):

- **off**: `ms_per_mb 0, base_ms 0` (the emulator's default: 15 workers, 30 s, but
  rendering costs nothing beyond the emulator's own time);
- **on**: production-like `--server-workers 15 --gateway-timeout-s 30 --server-ms-per-mb 200
  --server-base-ms 30` (docs/emulator.md, "DIALS server model": the rendering cost is an
  estimate, not a measurement of DIALS).

The work is the EB 360×170 occupancy map (`ecal` workspace) of N ZeroBias runs (default 50:
the ingestion benchmark's 50-run set, without the 2,400-LS run), fetched the way the nightly
DAG's `ingest` task fetches: a `DialsClient` with `pool_size=RUN_CONCURRENCY` and
`ingest_units(..., concurrency=RUN_CONCURRENCY)` (airflow/tasks.py, 2), in a process of its
own. "k tasks" runs k such processes at once over disjoint run sets (balanced by LS), as k
mapped tasks with `dials_api` pool slots k would: 2k requests in flight.

Per case: failed runs, wall (first child started to last child exited: start-up, auth and
planning included), JSON MB (what the client parsed) and MB on the wire (gzip), client MB/s,
the model's counters (504s, queue waits, worker time, peak busy workers), and the page sizes
the client asked for (a request log kept by wrapping the client's session: measurement
only). Every run's parquet is compared with the first case's (model off, 1 task): row count
and a sha256 of each column's values, the data column included. Before every case the
emulator's world clock moves one second, so no page comes from the 30 s page cache of an
earlier case.

`--stress MS_PER_MB` adds one case with a much higher rendering cost on the smallest run(s),
so that full-size pages pass the 30 s limit: the client must meet 504s and shrink its pages.

    .venv/bin/python bench/server_model.py [--runs 50] [--tasks 1,2,4] [--repeat 2]
                                           [--stress 20000] [--quick]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

ZB = "/ZeroBias/Run2024C-PromptReco-v1/DQMIO"
EB = "EcalBarrel/EBOccupancyTask/EBOT digi occupancy"
WORKSPACE = "ecal"
SKIP_RUNS = 11  # the ingestion benchmark's 1- and 10-run sets (the 2,400-LS run among them)
PRODUCTION = {"workers": 15, "gateway_timeout_s": 30.0, "ms_per_mb": 200.0, "base_ms": 30.0}
OFF = {"ms_per_mb": 0.0, "base_ms": 0.0}


# ---------------------------------------------------------------------------- child

def child(spec: dict[str, Any]) -> dict[str, Any]:
    """One mapped `ingest` task: what tasks.ingest does with the unit's due runs."""
    import logging
    from urllib.parse import parse_qs, urlsplit

    os.environ["AIRFLOW_CONN_DIALS_DEFAULT"] = json.dumps(spec["conn"])
    from dialsflow.config.connections import DialsSettings, from_env
    from dialsflow.config.runs import RunSelection
    from dialsflow.pipeline.ingest import ingest_units
    from dialsflow.pipeline.units import resolve_units
    from dialsflow.services.dials import DialsClient

    logging.basicConfig(level=logging.WARNING)
    concurrency = spec["concurrency"]
    settings = DialsSettings.from_connection(from_env("dials_default")).for_workspace(
        spec["workspace"])
    pages: Counter[tuple[int, int]] = Counter()  # (page_size, status) of th2 requests
    lock = threading.Lock()
    log = {"wire_bytes": 0, "timeouts": 0, "other_requests": 0}
    with DialsClient(settings, pool_size=concurrency) as client:
        send = client.session.send

        def logged_send(request: Any, **kw: Any) -> Any:  # measurement only
            query = parse_qs(urlsplit(request.url).query)
            data = "/api/v1/th2/" in request.url and "run_number" in query
            try:
                response = send(request, **kw)
            except Exception:
                with lock:
                    log["timeouts" if data else "other_requests"] += 1
                raise
            with lock:
                if data:
                    pages[(int(query["page_size"][0]), response.status_code)] += 1
                else:
                    log["other_requests"] += 1
            return response

        client.session.send = logged_send  # type: ignore[method-assign]
        read0 = _bytes_read()
        units = resolve_units(client, [spec["dataset"]], [spec["me"]], "auto",
                              RunSelection.of(spec["runs"]), spec["workspace"])
        report = ingest_units(client, units, Path(spec["out"]), concurrency=concurrency,
                              on_result=lambda r: None)
        log["wire_bytes"] = _bytes_read() - read0
    return {"runs": [{"run": r.run, "rows": r.rows, "json_bytes": r.json_bytes,
                      "error": r.error} for r in report.results],
            "pages": [[size, status, n] for (size, status), n in pages.items()], **log}


def _bytes_read() -> int:
    """Bytes this process has read (read syscalls: sockets and files). Counted from after
    the imports, it is about the bytes on the wire: DIALS' answers are gzipped and sent
    chunked, so there is no Content-Length to add up, and urllib3 1.x does not count
    chunked bodies; the only files read meanwhile are the small manifest entries."""
    for line in Path("/proc/self/io").read_text().splitlines():
        if line.startswith("rchar:"):
            return int(line.split()[1])
    return 0


# ---------------------------------------------------------------------------- parent

@dataclass
class Case:
    model: str  # "off", "on", or "x<factor>" for --stress
    tasks: int
    want: dict[str, Any]  # server model settings of the case
    wall: float = 0.0
    cpu: float = 0.0  # children, user + sys
    emu_cpu: float = 0.0
    runs: dict[int, dict[str, Any]] = field(default_factory=dict)
    pages: Counter = field(default_factory=Counter)
    wire_bytes: int = 0
    client_timeouts: int = 0
    server: dict[str, Any] = field(default_factory=dict)
    settings: dict[str, Any] = field(default_factory=dict)
    peak_busy: int = 0
    peak_waiting: int = 0
    digests: dict[int, tuple[int, str, str]] = field(default_factory=dict)
    in_flight: int = 0  # requests in flight at most: RUN_CONCURRENCY per task, runs allowing
    same: int = 0  # runs whose digests equal the reference case's (worst of the tries)
    failed_any: list[int] = field(default_factory=list)  # failed runs in any try

    @property
    def json_mb(self) -> float:
        return sum(r["json_bytes"] for r in self.runs.values()) / 1e6

    @property
    def failed(self) -> list[int]:
        return sorted(r for r, v in self.runs.items() if v["error"])


def _proc_cpu(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _plus_one_second(iso: str) -> str:
    t = datetime.fromisoformat(iso.replace("Z", "+00:00")) + timedelta(seconds=1)
    return t.strftime("%Y-%m-%dT%H:%M:%SZ")


def pick_runs(truth: dict[str, Any], n: int) -> tuple[list[int], int, dict[int, int]]:
    ds = next(d for d in truth["datasets"] if d["dataset"] == ZB)
    runs = sorted(int(r) for r, v in ds["runs"].items() if v["in_dials"])
    ls = {int(r): sum(b - a + 1 for a, b in v["dials_ls"]) for r, v in ds["runs"].items()}
    chosen = runs[SKIP_RUNS:SKIP_RUNS + n]
    if len(chosen) < n or SKIP_RUNS + n >= len(runs):
        raise SystemExit(f"{ZB} has only {len(runs)} runs in DIALS; ask for fewer")
    return chosen, runs[-1], ls


def split(runs: list[int], ls: dict[int, int], k: int) -> list[list[int]]:
    """k disjoint run sets of about equal LS (largest first into the lightest set)."""
    sets: list[list[int]] = [[] for _ in range(k)]
    for run in sorted(runs, key=lambda r: -ls[r]):
        min(sets, key=lambda s: sum(ls[r] for r in s)).append(run)
    return [sorted(s) for s in sets]


def warm_up(emu: Any, run: int) -> None:
    """One 1-row EB page from a run outside the set (ME template, code paths)."""
    import requests

    conn = emu.connections()["dials_default"]
    r = requests.post(f"{emu.url}/auth/realms/cern/api-access/token", data={
        "grant_type": "client_credentials", "client_id": conn["login"],
        "client_secret": conn["password"], "audience": conn["extra"]["audience"]}, timeout=30)
    r.raise_for_status()
    r = requests.get(f"{emu.url}/api/v1/th2/", params={"me": EB, "run_number": run,
                                                      "page_size": 1},
                     headers={"Authorization": f"Bearer {r.json()['access_token']}",
                              "Workspace": WORKSPACE}, timeout=60)
    r.raise_for_status()


def run_case(emu: Any, case: Case, sets: list[list[int]], base: dict[str, Any], work: Path,
             log: Path) -> None:
    emu.set_server(**case.want)
    case.settings = emu.server()
    emu.set_now(_plus_one_second(emu.now()))
    emu.reset_stats()
    emu_pid = emu._proc.pid
    out = work / f"{case.model}-{case.tasks}-{time.monotonic_ns()}"
    stop = threading.Event()

    def watch() -> None:  # peaks of busy workers and queue length
        import requests

        while not stop.wait(0.25):
            try:
                s = emu.stats()["dials_server"]
            except requests.RequestException:  # a busy moment: the next poll will do
                continue
            case.peak_busy = max(case.peak_busy, s["busy_workers"])
            case.peak_waiting = max(case.peak_waiting, s["waiting"])

    watcher = threading.Thread(target=watch, daemon=True)
    emu0 = _proc_cpu(emu_pid)
    watcher.start()
    procs = []
    with open(log, "ab") as err:
        t0 = time.perf_counter()
        for i, runs in enumerate(sets):
            spec = {**base, "runs": runs, "out": str(out / f"task{i}")}
            p = subprocess.Popen([sys.executable, __file__, "--child"], stdin=subprocess.PIPE,
                                 stdout=subprocess.PIPE, stderr=err)
            assert p.stdin
            p.stdin.write(json.dumps(spec).encode())
            p.stdin.close()
            procs.append(p)
        outputs = []
        for p in procs:
            assert p.stdout
            body = p.stdout.read()
            _, status, usage = os.wait4(p.pid, 0)
            p.returncode = os.waitstatus_to_exitcode(status)
            case.cpu += usage.ru_utime + usage.ru_stime
            if p.returncode != 0:
                raise RuntimeError(f"a task failed ({p.returncode}); see {log}")
            outputs.append(json.loads(body))
        case.wall = time.perf_counter() - t0
    stop.set()
    watcher.join()
    case.emu_cpu = _proc_cpu(emu_pid) - emu0
    case.server = emu.stats()["dials_server"]
    for res in outputs:
        case.runs.update({r["run"]: r for r in res["runs"]})
        case.pages.update({(s, st): n for s, st, n in res["pages"]})
        case.wire_bytes += res["wire_bytes"]
        case.client_timeouts += res["timeouts"]
    for path in out.rglob("run_*.parquet"):
        case.digests[int(path.stem.split("_")[1])] = digest(path)
    shutil.rmtree(out, ignore_errors=True)


def digest(path: Path) -> tuple[int, str, str]:
    """(rows, sha256 of the data column's values and shapes, sha256 of every column):
    batch by batch, so row groups cut elsewhere give the same digest."""
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    hashes: dict[str, Any] = {}
    rows = 0
    for batch in pq.ParquetFile(path).iter_batches(batch_size=64):
        rows += batch.num_rows
        for name, col in zip(batch.schema.names, batch.columns, strict=True):
            h = hashes.setdefault(name, hashlib.sha256())
            if name == "data":  # list<double> (v2) or list<list<double>> (v1): shapes,
                while pa.types.is_list(col.type):  # then every value
                    h.update(pc.list_value_length(col).to_numpy(zero_copy_only=False).tobytes())
                    col = col.flatten()
                h.update(col.to_numpy(zero_copy_only=False).tobytes())
            else:
                h.update(json.dumps(col.to_pylist()).encode()[1:-1] + b",")
    data = hashes["data"].hexdigest()
    table = hashlib.sha256(b"".join(hashes[n].digest() for n in sorted(hashes))).hexdigest()
    return rows, data, table


def capacity(settings: dict[str, Any], page_mb: float) -> tuple[float, float] | None:
    """The model's MB/s for all clients: workers / (ms_per_mb / 1000), and the same with
    the base cost of pages of `page_mb` MB."""
    if not settings["ms_per_mb"]:
        return None
    raw = settings["workers"] / (settings["ms_per_mb"] / 1000)
    per_page = settings["base_ms"] / 1000 + settings["ms_per_mb"] / 1000 * page_mb
    return raw, settings["workers"] * page_mb / per_page


def page_sizes(pages: Counter) -> str:
    ok = Counter({size: n for (size, status), n in pages.items() if status == 200})
    top = ", ".join(f"{size}×{n}" for size, n in sorted(ok.items(), key=lambda x: -x[1])[:3])
    more = f" (+{len(ok) - 3} sizes)" if len(ok) > 3 else ""
    return f"{top}{more}; min {min(ok) if ok else '-'}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--runs", type=int, default=50, help="ZeroBias runs to backfill (50)")
    ap.add_argument("--tasks", default="1,2,4",
                    help="mapped tasks at once, each RUN_CONCURRENCY runs in flight (1,2,4)")
    ap.add_argument("--repeat", type=int, default=1,
                    help="runs of each case; the fastest wall is shown, every one is compared")
    ap.add_argument("--stress", type=float, default=0.0, metavar="MS_PER_MB",
                    help="one more case, 1 task on the --stress-runs smallest runs, with "
                         "this rendering cost (e.g. 20000: pages of 2 MB pass 30 s, so the "
                         "client meets 504s and must shrink its pages); 0 = none")
    ap.add_argument("--stress-runs", type=int, default=1)
    ap.add_argument("--quick", action="store_true", help="smoke run: 4 runs, tasks 1,2")
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args()
    if args.child:
        print(json.dumps(child(json.loads(sys.stdin.read()))))
        return
    n_runs = 4 if args.quick else args.runs
    task_counts = [1, 2] if args.quick else [int(k) for k in args.tasks.split(",") if k]

    from dialsflow.airflow.tasks import RUN_CONCURRENCY
    from dialsflow_emulator.process import EmulatorProcess

    work = Path(tempfile.mkdtemp(prefix="server-model-bench-"))
    log = work / "children.log"
    cases: list[Case] = []
    ref: Case | None = None
    try:
        with EmulatorProcess(profile="bench", seed=args.seed) as emu:
            runs, spare, ls = pick_runs(emu.truth(), n_runs)
            warm_up(emu, spare)
            base = {"url": emu.url, "conn": emu.connections(workspace=WORKSPACE)[
                "dials_default"], "workspace": WORKSPACE, "dataset": ZB, "me": EB,
                "concurrency": RUN_CONCURRENCY}
            print(f"emulator {emu.url}: bench profile, seed {args.seed}, gzip on; {ZB} × {EB} "
                  f"({WORKSPACE}); {len(runs)} runs ({runs[0]}..{runs[-1]}, "
                  f"{sum(ls[r] for r in runs):,} LS); RUN_CONCURRENCY {RUN_CONCURRENCY} per "
                  f"task; model on = {PRODUCTION}, off = ms_per_mb 0, base_ms 0; "
                  f"{args.repeat} try(s) per case", flush=True)
            plan = [(model, k, split(runs, ls, k), PRODUCTION if model == "on" else
                     {**PRODUCTION, **OFF}) for k in task_counts for model in ("off", "on")]
            if args.stress:
                smallest = sorted(sorted(runs, key=lambda r: ls[r])[:args.stress_runs])
                plan.append((f"x{args.stress / PRODUCTION['ms_per_mb']:g}", 1, [smallest],
                             {**PRODUCTION, "ms_per_mb": args.stress}))
            for model, k, sets, want in plan:
                tries = []
                for _ in range(max(1, args.repeat)):
                    case = Case(model, k, want, in_flight=sum(
                        min(len(s), RUN_CONCURRENCY) for s in sets))
                    run_case(emu, case, sets, base, work, log)
                    ref = ref or case
                    case.same = sum(1 for r, d in case.digests.items()
                                    if ref.digests.get(r) == d)
                    tries.append(case)
                best = min(tries, key=lambda c: c.wall)
                best.same = min(c.same for c in tries)
                best.failed_any = sorted({r for c in tries for r in c.failed})
                cases.append(best)
                _print_case(best, sum(len(s) for s in sets), header=len(cases) == 1)
    except BaseException:
        if log.exists():
            sys.stderr.write(log.read_text()[-4000:])
        raise
    finally:
        shutil.rmtree(work, ignore_errors=True)
    _print_summary(cases, ref)


def _print_case(c: Case, n_runs: int, *, header: bool) -> None:
    if header:
        print()
        print("wall = first task started to last task exited; MB/s = JSON MB / wall; wire ≈ "
              "bytes the tasks read after start-up (gzip);\nsame = runs whose parquet (rows, "
              "every column's values) equals the model-off 1-task case's; 504 = nginx 504s "
              "the model sent\n(504s / read timeouts the client saw in brackets); queued = "
              "requests that waited for a worker (max wait s);\nbusy/wait = peak busy workers "
              "/ peak queue (polled every 0.25 s); util = worker time / (wall × workers); page "
              "sizes: of the pages answered")
        print(f"{'model':<5} {'tasks':>5} {'in flight':>9} {'failed':>6} {'same':>7} "
              f"{'wall s':>7} {'JSON MB':>8} {'wire MB':>8} {'MB/s':>6} {'504':>8} "
              f"{'queued':>12} {'busy/wait':>9} {'util':>5} {'pages':>6}  page sizes (rows×n)")
    s = c.server
    client_504 = sum(n for (_, st), n in c.pages.items() if st == 504)
    data_pages = sum(n for (_, st), n in c.pages.items() if st == 200)
    util = s["render_s"] / (c.wall * c.settings["workers"])
    peaks = f"{c.peak_busy}/{c.peak_waiting}"
    print(f"{c.model:<5} {c.tasks:>5} {c.in_flight:>9} {len(c.failed_any):>6} "
          f"{c.same:>3}/{n_runs:<3} {c.wall:>7.1f} {c.json_mb:>8.1f} {c.wire_bytes / 1e6:>8.1f} "
          f"{c.json_mb / c.wall:>6.1f} {s['gateway_timeouts']:>3} ({client_504}/"
          f"{c.client_timeouts}) {s['queued']:>5} ({s['max_queue_wait_s']:>4.2f}) "
          f"{peaks:>9} {util:>5.0%} {data_pages:>6}  {page_sizes(c.pages)}", flush=True)
    if len(c.digests) != n_runs or c.failed_any or c.same != n_runs:
        print(f"  WARNING: {len(c.digests)} parquet files for {n_runs} runs, {c.same} as in "
              f"the reference; failed runs {c.failed_any}")


def _print_summary(cases: list[Case], ref: Case | None) -> None:
    print()
    print("capacity = the model's MB/s for all of CMS: workers / (ms_per_mb / 1000), and with "
          "the base cost at the mean page size; share = client MB/s / capacity")
    print(f"{'tasks':>5} {'in flight':>9} {'MB/s off':>8} {'MB/s on':>7} {'on/off':>6} "
          f"{'page MB':>7} {'capacity MB/s':>17} {'share':>13} {'CPU s tasks':>11} "
          f"{'emu CPU s':>9}")
    for on in (c for c in cases if c.model == "on"):
        off = next(c for c in cases if c.model == "off" and c.tasks == on.tasks)
        data_pages = sum(n for (_, st), n in on.pages.items() if st == 200)
        page_mb = on.json_mb / data_pages if data_pages else 0.0
        cap = capacity(on.settings, page_mb)
        mbs_on, mbs_off = on.json_mb / on.wall, off.json_mb / off.wall
        cap_text = f"{cap[0]:.0f} ({cap[1]:.1f})" if cap else "-"
        share = f"{mbs_on / cap[0]:.0%} ({mbs_on / cap[1]:.0%})" if cap else "-"
        print(f"{on.tasks:>5} {on.in_flight:>9} {mbs_off:>8.1f} {mbs_on:>7.1f} "
              f"{mbs_on / mbs_off:>6.2f} {page_mb:>7.2f} {cap_text:>17} {share:>13} "
              f"{on.cpu:>11.1f} {on.emu_cpu:>9.1f}")
    diff = [c for c in cases if c.failed_any or not c.digests or c.same != len(c.runs)]
    print()
    print("parquet identical with and without the model, in every case and try: "
          + ("yes" if not diff else
             "NO: " + ", ".join(f"{c.model}/{c.tasks} tasks" for c in diff)))
    if ref is not None:
        rows = sum(d[0] for d in ref.digests.values())
        print(f"reference ({ref.model}, {ref.tasks} task): {len(ref.digests)} runs, {rows:,} "
              f"rows; sha256 of the data column over runs in order: " + hashlib.sha256(
                  "".join(ref.digests[r][1] for r in sorted(ref.digests)).encode()
              ).hexdigest()[:16])


if __name__ == "__main__":
    main()
