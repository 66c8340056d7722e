"""Building a world from a profile and a seed: fills and runs, files and their way through DBS
and DIALS' ingestion, planted gaps and failures, certification JSONs; same inputs, same world.

Timing follows production (docs/emulator.md, "The world clock", cites the sources): Express
DQMIO in DBS about an hour after a run, PromptReco about 48 h; DIALS' file index picks a file
up at its next hourly indexer run, a worker then inserts its rows LS by LS; the Golden JSON
certifies a run weeks to months after it ended, in cumulative releases every 3-5 weeks.
"""

from __future__ import annotations

import math
import random
import uuid
from dataclasses import replace
from datetime import datetime, timedelta
from functools import lru_cache

from .basics import stable_int
from .entities import (
    DCS_SERIES,
    PP_GEV,
    PPREF_GEV,
    SPECIAL_GEV,
    CertFile,
    Dataset,
    DqmFile,
    Fill,
    MlModel,
    Run,
    RunCertification,
)
from .model import World
from .omsgaps import oms_missing_ls, oms_null_ls
from .profiles import ECAL_MES, PROFILES, Profile

HOUR = timedelta(hours=1)
DAY = timedelta(days=1)
CLASS = "Collisions24"
OUT_TO_DATE = f"{CLASS}/outToDate/"
DAILY_DCS = f"{CLASS}/DCSOnly_JSONS/dailyDCSOnlyJSON/"

COPY_ERROR_TRACE = "OSError: XRootD error [3011] No servers are available to read the file."
PARSING_ERROR_TRACE = (
    "Traceback (most recent call last):\n"
    '  File "/home/app/etl/python/pipelines/file_ingesting/pipeline.py", line 46, in pipeline\n'
    "    transform_load(engine, me_pattern, file_id, dataset_id, fpath, last_status)\n"
    "ValueError: cannot reshape array of size 4161 into shape (60,74)\n"
)


def build_world(profile_name: str = "demo", seed: int = 1) -> World:
    """Build the world for a profile and seed; same inputs, same world, on any machine."""
    return _build_world(profile_name, seed)


@lru_cache(maxsize=8)
def _build_world(profile_name: str, seed: int) -> World:
    if profile_name not in PROFILES:
        raise ValueError(f"unknown profile {profile_name!r}; choose from {sorted(PROFILES)}")
    p = PROFILES[profile_name]
    rng = random.Random(f"{p.name}:{seed}")

    fills, runs = _build_runs(p, rng)
    last_end = max(r.end for r in runs)
    # Default "now": a day after the last run ended: the newest runs still wait for
    # PromptReco or DIALS, and most runs of the season for their Golden certification.
    default_now = _seconds(last_end + DAY)
    zb = Dataset(15102369, "/ZeroBias/Run2024C-PromptReco-v1/DQMIO", ("tracker", "ecal"),
                 p.start - timedelta(days=30))
    ex = Dataset(15102368, "/StreamExpress/Run2024C-Express-v1/DQMIO", ("tracker", "csc"),
                 p.start - timedelta(days=30))
    datasets = [ex, zb]

    pp = [r for r in runs if r.pp]
    bad = frozenset(r.number for r in rng.sample(pp, max(1, len(pp) // 8)))
    registered = _registrations(datasets, runs, rng)
    holds = _held_back(zb, pp, registered, default_now, rng)
    files: list[DqmFile] = []
    for d in datasets:
        for r in runs:
            reg = registered.get((d.dataset_id, r.number))
            if reg is not None:
                files.extend(_split_files(d, r, reg, holds.get((d.dataset_id, r.number),
                                                                timedelta(0)), rng))
    missing = _missing_ls(datasets, runs, files, rng)

    cert_files, run_cert, dcs_ranges = _build_certification(p, runs, bad, rng)
    held_back = frozenset(run for _, run in holds)
    files = _plant_ingestion_failures(files, zb, runs, run_cert, held_back, missing, rng)
    files = _plant_invalid_files(files, datasets, runs, held_back, missing, rng)

    mes = {"tracker": p.tracker_mes, "ecal": ECAL_MES}
    models = [
        MlModel(1, "model_bpix_l1_digi_nmf_v1.onnx",
                "PixelPhase1/Phase1_MechanicalView/PXBarrel/digi_occupancy_per_SignedModuleCoord_"
                "per_SignedLadderCoord_PXLayer_1", True, "tracker"),
        MlModel(2, "model_charge_l1_ae_v0.onnx", "PixelPhase1/Tracks/PXBarrel/charge_PXLayer_1",
                False, "tracker"),
    ]
    oms_missing = oms_missing_ls(runs, run_cert, dcs_ranges, seed)
    return World(
        profile=p, seed=seed, fills=fills, runs=runs, datasets=datasets, files=files,
        mes_by_workspace=mes, missing_ls=missing, cert_files=cert_files,
        held_back_runs=held_back, bad_runs=bad, ml_models=models, default_now=default_now,
        run_certification=run_cert, dcs_ranges=dcs_ranges, cert_class=CLASS,
        oms_missing_ls=oms_missing, oms_null_ls=oms_null_ls(runs, oms_missing, dcs_ranges, seed),
    )


# --------------------------------------------------------------------------- fills and runs


def _build_runs(p: Profile, rng: random.Random) -> tuple[list[Fill], list[Run]]:
    """Fills one after another over the profile's span. The first fill is a 900 GeV special
    fill; after the last 13.6 TeV fill comes one 5.36 TeV pp-reference fill, as in 2024."""
    fills: list[Fill] = []
    runs: list[Run] = []
    t = p.start
    fill_no, run_no = 9510, 379412
    end = p.start + timedelta(days=p.days)
    planted_big = False
    energy = SPECIAL_GEV
    while energy:
        fill_start = t
        bunches = 2 if energy == SPECIAL_GEV else rng.choice([1190, 2340, 2352, 2448])
        stable_start = t + timedelta(minutes=rng.uniform(30, 60))
        t = stable_start
        n_runs = rng.randint(2, 3) if energy != PP_GEV else rng.randint(*p.runs_per_fill)
        for _ in range(n_runs):
            n_ls = int(min(max(rng.lognormvariate(math.log(p.ls_median), p.ls_sigma),
                               p.ls_clip[0]), p.ls_clip[1]))
            if p.big_run_ls and not planted_big and len(runs) >= 5 and energy == PP_GEV:
                n_ls, planted_big = p.big_run_ls, True
            pileup = {SPECIAL_GEV: rng.uniform(0.1, 0.6), PPREF_GEV: rng.uniform(2.5, 6.0)}.get(
                energy, rng.uniform(48, 64))
            runs.append(Run(run_no, fill_no, t, n_ls, True, round(pileup, 2), energy=energy))
            t = runs[-1].end + timedelta(minutes=rng.uniform(3, 25))
            run_no += rng.randint(1, 6)
        stable_end = t
        fills.append(Fill(fill_no, fill_start, t + timedelta(minutes=20), stable_start,
                          stable_end, bunches, energy))
        # Between fills: a short run without stable beams now and then (not certifiable).
        t += timedelta(minutes=30)
        if rng.random() < p.non_stable_share:
            n_ls = rng.randint(5, 30)
            runs.append(Run(run_no, fill_no, t, n_ls, False, 0.0, energy=energy))
            t = runs[-1].end
            run_no += rng.randint(1, 6)
        run_no += rng.randint(5, 20)  # cosmics, tests and mini-DAQ runs between fills
        fill_no += rng.randint(1, 4)
        if energy == PPREF_GEV:
            energy = 0  # the season ends with the pp-reference fill
        elif t + timedelta(hours=p.fill_gap_hours[1]) >= end:
            energy = PPREF_GEV
            t += timedelta(hours=rng.uniform(12, 30))  # the switch to 5.36 TeV
        else:
            energy = PP_GEV
            t += timedelta(hours=rng.uniform(*p.fill_gap_hours))
    return fills, runs


# --------------------------------------------------------------------------- DBS and DIALS


def _seconds(value: datetime) -> datetime:
    """Whole seconds, as every service (and the truth) prints times."""
    return value.replace(microsecond=0)


def _registrations(datasets: list[Dataset], runs: list[Run],
                   rng: random.Random) -> dict[tuple[int, int], datetime]:
    """When each (dataset, run) gets its DQMIO files in DBS: Express about 1 h after the run
    for every run, ZeroBias PromptReco after the ~48 h delay for 13.6 TeV collision runs."""
    out: dict[tuple[int, int], datetime] = {}
    for d in datasets:
        express = d.primary == "StreamExpress"
        for r in runs:
            if not express and not r.pp:
                continue
            hours = rng.uniform(0.5, 1.5) if express else rng.uniform(46, 52)
            out[(d.dataset_id, r.number)] = _seconds(r.end + timedelta(hours=hours))
    return out


def _held_back(zb: Dataset, pp: list[Run], registered: dict[tuple[int, int], datetime],
               default_now: datetime, rng: random.Random) -> dict[tuple[int, int], timedelta]:
    """Two ZeroBias runs whose ingestion waits days in DIALS' queue: one mid-season, and the
    newest one registered before the default clock, held at least until a day past it."""
    regs = sorted((registered[(zb.dataset_id, r.number)], r.number) for r in pp)
    newest_reg, newest = [x for x in regs if x[0] <= default_now - HOUR][-1]
    hold = max(3 * DAY, default_now - newest_reg + HOUR * rng.uniform(12, 36))
    middle = [n for _, n in regs[len(regs) // 3: 2 * len(regs) // 3] if n != newest]
    return {(zb.dataset_id, newest): hold,
            (zb.dataset_id, rng.choice(middle)): 3 * DAY}


def _indexer_run(registered: datetime, rng: random.Random) -> datetime:
    """When DIALS' file index first lists a file: the next hourly indexer run (minute 0)
    after DBS registered it, a later one now and then (a failed or overrunning run), plus the
    minutes the DBS query and the load take."""
    tick = registered.replace(minute=0, second=0, microsecond=0) + HOUR
    if rng.random() < 0.12:
        tick += HOUR * rng.randint(1, 4)
    return tick + timedelta(seconds=rng.uniform(60, 300))


def _split_files(d: Dataset, r: Run, registered: datetime, hold: timedelta,
                 rng: random.Random) -> list[DqmFile]:
    """1–3 files per run with contiguous LS ranges; one DBS block per dataset and day."""
    n_files = 1 if r.n_ls < 30 else rng.randint(1, 3)
    cuts = sorted(rng.sample(range(2, r.n_ls + 1), n_files - 1)) if n_files > 1 else []
    bounds = [1, *cuts, r.n_ls + 1]
    block_uuid = uuid.UUID(int=stable_int(d.name, r.end.date(), bits=128))
    block = f"{d.name}#{block_uuid}"
    indexed = _indexer_run(registered, rng)
    out = []
    kind = "express" if d.primary == "StreamExpress" else "data"
    for i in range(n_files):
        first, last = bounds[i], bounds[i + 1] - 1
        guid = str(uuid.UUID(int=stable_int(d.dataset_id, r.number, i, bits=128))).upper()
        lfn = (f"/store/{kind}/{d.era}/{d.primary}/DQMIO/{d.processing_string}-v"
               f"{d.processing_version}/000/{r.number // 1000:03d}/{r.number % 1000:03d}/00000/"
               f"{guid}.root")
        # Queue wait, then rows LS by LS (about 6-14 s per LS), then the ML models.
        start = indexed + timedelta(minutes=rng.uniform(2, 45)) + hold
        rows_done = start + timedelta(seconds=60 + (last - first + 1) * rng.uniform(6, 14))
        out.append(DqmFile(
            file_id=15540000000 + stable_int(d.dataset_id, r.number, i) % 400000000,
            dataset_id=d.dataset_id, run=r.number, first_ls=first, last_ls=last, lfn=lfn,
            size=int((last - first + 1) * rng.uniform(0.4e6, 1.2e6)), block_name=block,
            registered_at=registered, indexed_at=_seconds(indexed),
            ingest_started_at=_seconds(start), rows_done_at=_seconds(rows_done),
            ingested_at=_seconds(rows_done + timedelta(minutes=rng.uniform(1, 8))),
        ))
    return out


def _missing_ls(datasets: list[Dataset], runs: list[Run], files: list[DqmFile],
                rng: random.Random) -> dict[tuple[int, int], frozenset[int]]:
    """Planted LS gaps: single LS without per-LS data in three runs of each dataset."""
    missing: dict[tuple[int, int], frozenset[int]] = {}
    for d in datasets:
        present = {f.run for f in files if f.dataset_id == d.dataset_id}
        candidates = [r for r in runs if r.stable_beam and r.n_ls > 20 and r.number in present]
        for r in rng.sample(candidates, min(3, len(candidates))):
            k = rng.randint(1, 4)
            missing[(d.dataset_id, r.number)] = frozenset(rng.sample(range(2, r.n_ls), k))
    return missing


def _plant_ingestion_failures(files: list[DqmFile], zb: Dataset, runs: list[Run],
                              run_cert: dict[int, RunCertification], held_back: frozenset[int],
                              missing: dict[tuple[int, int], frozenset[int]],
                              rng: random.Random) -> list[DqmFile]:
    """Three ZeroBias files DIALS never finishes, each in its own run:
    - STARTED for ever with part of its rows (a worker killed mid-file), in a Golden-certified
      run of the first half of the season;
    - PARSING_ERROR with the rows inserted before the failure;
    - COPY_ERROR, failed before any row, in a run whose other files are in DIALS."""
    taken = set(held_back) | {run for (ds, run) in missing if ds == zb.dataset_id}
    by_number = {r.number: r for r in runs}
    middle = runs[0].start + (runs[-1].end - runs[0].start) / 2
    zb_files = [f for f in files if f.dataset_id == zb.dataset_id]

    def pick(ok) -> DqmFile:
        choice = rng.choice([f for f in zb_files if f.run not in taken and ok(f)])
        taken.add(choice.run)
        return choice

    def certified(run: int) -> bool:
        c = run_cert.get(run)
        return c is not None and c.certified_at is not None and c.dropped_at is None

    out = {f.file_id: f for f in files}
    stuck = pick(lambda f: f.n_ls >= 8 and certified(f.run) and by_number[f.run].end < middle)
    out[stuck.file_id] = replace(stuck, ingested_at=None, final_status="STARTED",
                                 rows_cap=rng.randint(stuck.n_ls // 4, 3 * stuck.n_ls // 4))
    broken = pick(lambda f: f.n_ls >= 8)
    cap = rng.randint(broken.n_ls // 4, 3 * broken.n_ls // 4)
    share = (cap + 0.5) / broken.n_ls
    failed_at = broken.ingest_started_at + (broken.rows_done_at - broken.ingest_started_at) * share
    out[broken.file_id] = replace(broken, final_status="PARSING_ERROR", rows_cap=cap,
                                  ingested_at=_seconds(failed_at), err_trace=PARSING_ERROR_TRACE)
    lost = pick(lambda f: f.first_ls > 1)
    out[lost.file_id] = replace(
        lost, final_status="COPY_ERROR", rows_cap=0, err_trace=COPY_ERROR_TRACE,
        ingested_at=lost.ingest_started_at + timedelta(seconds=rng.randint(20, 600)))
    return list(out.values())


def _plant_invalid_files(files: list[DqmFile], datasets: list[Dataset], runs: list[Run],
                         held_back: frozenset[int],
                         missing: dict[tuple[int, int], frozenset[int]],
                         rng: random.Random) -> list[DqmFile]:
    """One DQMIO file per dataset invalidated in DBS (is_file_valid 0) days after DIALS
    ingested it, in a run of the first half of the season with other files."""
    middle = runs[0].start + (runs[-1].end - runs[0].start) / 2
    ended = {r.number for r in runs if r.end < middle}
    out = {f.file_id: f for f in files}
    taken: set[int] = set()
    per_run: dict[tuple[int, int], int] = {}
    for f in files:
        per_run[(f.dataset_id, f.run)] = per_run.get((f.dataset_id, f.run), 0) + 1
    for d in datasets:
        candidates = [f for f in files if f.dataset_id == d.dataset_id and f.run in ended
                      and per_run[(d.dataset_id, f.run)] > 1 and f.final_status == "FINISHED"
                      and f.ingested_at is not None and f.run not in held_back
                      and (d.dataset_id, f.run) not in missing
                      and all(g.final_status == "FINISHED" for g in files
                              if g.dataset_id == d.dataset_id and g.run == f.run)]
        candidates = [f for f in candidates if f.run not in taken] or candidates
        if not candidates:
            continue
        victim = rng.choice(candidates)
        taken.add(victim.run)
        assert victim.ingested_at is not None
        out[victim.file_id] = replace(victim, invalidated_at=_seconds(
            victim.ingested_at + timedelta(days=rng.uniform(2, 10))))
    return list(out.values())


# --------------------------------------------------------------------------- certification


def _build_certification(p: Profile, runs: list[Run], bad: frozenset[int], rng: random.Random
                         ) -> tuple[list[CertFile], dict[int, RunCertification],
                                    dict[int, list[list[int]]]]:
    """The DCS-only ranges of every collision run, the daily DCS-only JSONs, the Golden and
    Muon releases with their era files, and the lower-case pp-reference trap."""
    dcs: dict[int, list[list[int]]] = {}
    golden: dict[int, list[list[int]]] = {}
    for r in runs:
        if not r.stable_beam:
            continue
        lo = rng.randint(1, 3)
        dcs[r.number] = [[lo, r.n_ls]]
        if not r.pp or r.number in bad:
            continue
        if r.n_ls > 40 and rng.random() < 0.25:  # partly certified: a bad stretch inside
            cut = rng.randint(lo + 5, r.n_ls - 10)
            golden[r.number] = [[lo, cut], [cut + 6, r.n_ls]]
        else:
            golden[r.number] = [[lo, r.n_ls]]
    files = _daily_dcs(p, runs, dcs, rng)
    releases, run_cert = _golden_releases(p, runs, bad, dcs, golden, rng)
    files += releases
    ppref = [r.number for r in runs if r.stable_beam and r.energy == PPREF_GEV]
    if ppref:  # pp-reference Golden with a lower-case 'golden': published last of all
        at = max(c.published_at for c in files) + timedelta(days=rng.uniform(3, 8))
        files.append(CertFile(
            f"{CLASS}/Cert_Collisions2024_ppref_{ppref[0]}_{ppref[-1]}_golden.json",
            at.replace(second=0, microsecond=0), {str(n): dcs[n] for n in ppref}, "ppref"))
    files.sort(key=lambda c: c.published_at)
    return files, run_cert, dcs


def _dcs_gaps(days: list[datetime], runs: list[Run], rng: random.Random) -> set[datetime]:
    """Stretches of several days without a daily DCS-only file (as in the 2024 listing)."""
    pp_end = max(r.end for r in runs if r.pp)
    usable = [d for d in days if d < pp_end - timedelta(days=len(days) // 10 + 1)][
        len(days) // 10 + 1:]
    gaps: set[datetime] = set()
    for _ in range(max(1, len(days) // 45)):
        length = min(rng.randint(4, 13), max(2, len(days) // 4))
        if len(usable) > length:
            first = rng.randrange(len(usable) - length)
            gaps.update(usable[first:first + length])
    return gaps


def _daily_dcs(p: Profile, runs: list[Run], dcs: dict[int, list[list[int]]],
               rng: random.Random) -> list[CertFile]:
    """One cumulative DCS-only JSON per collision-energy series, published at 19:31 on days
    when its content changed (runs ended two hours before), with its `_Latest.json` twin
    rewritten alongside; the other series are written right after the 13.6 TeV one."""
    first_day = runs[0].start.replace(hour=0, minute=0, second=0, microsecond=0)
    last_end = max(r.end for r in runs)
    days = []
    day = first_day
    while day <= last_end + timedelta(days=10):
        days.append(day)
        day += DAY
    gaps = _dcs_gaps(days, runs, rng)
    series = {energy: [r for r in runs if r.stable_beam and r.energy == energy]
              for energy in DCS_SERIES}
    files: list[CertFile] = []
    last: dict[int, dict] = {}
    for day in days:
        if day in gaps:
            continue
        for energy, minute in ((PP_GEV, 31), (SPECIAL_GEV, 32), (PPREF_GEV, 32)):
            at = day + timedelta(hours=19, minutes=minute)
            content = {str(r.number): dcs[r.number] for r in series[energy]
                       if r.end <= at - 2 * HOUR}
            if not content or content == last.get(energy):
                continue
            last[energy] = content
            prefix = DCS_SERIES[energy]
            first_run, last_run = series[energy][0].number, max(map(int, content))
            files.append(CertFile(
                f"{DAILY_DCS}{prefix}_{first_run}_{last_run}_DCSOnly_TkPx.json", at, content,
                "dcs"))
            files.append(CertFile(f"{DAILY_DCS}{prefix}_Latest.json", at, content,
                                  "dcs-latest"))
    return files


def _release_time(day: datetime, rng: random.Random) -> datetime:
    return day.replace(hour=rng.randint(10, 17), minute=rng.randint(0, 59), second=0,
                       microsecond=0)


def _golden_releases(p: Profile, runs: list[Run], bad: frozenset[int],
                     dcs: dict[int, list[list[int]]], golden: dict[int, list[list[int]]],
                     rng: random.Random) -> tuple[list[CertFile], dict[int, RunCertification]]:
    """Cumulative Golden and Muon JSONs: the first about five weeks into the season, then one
    every 3-5 weeks (skipped when it would not certify a newer run) until every good run is
    in and the season is two months over. A run is decided 3 weeks to 3 months after it
    ended and enters the next release; bad runs only ever reach the Muon JSON. One run is
    dropped again from the release after its first. Each release moves its predecessors to
    outToDate/; the era files are rewritten a week or so later."""
    pp = [r for r in runs if r.pp]
    by_number = {r.number: r for r in runs}
    first = pp[0].number
    ready = {r.number: _seconds(r.end + timedelta(days=rng.uniform(21, 90))) for r in pp}
    # The season's newest good run is decided last, so every release names a newer last run.
    newest = max(golden)
    ready[newest] = max(ready[newest], max(ready.values()) + HOUR)
    season_end = max(r.end for r in runs)
    times = [_release_time(p.start + timedelta(days=rng.uniform(33, 38)), rng)]
    # The first release certifies a few of the season's first runs (ended 3 weeks before).
    early = [n for n in sorted(golden)
             if by_number[n].end <= times[0] - timedelta(days=21)][:rng.randint(2, 4)]
    for n in early:
        ready[n] = min(ready[n], times[0] - HOUR)
    while times[-1] < ready[newest] or times[-1] < season_end + 60 * DAY:
        times.append(_release_time(times[-1] + timedelta(days=rng.uniform(21, 35)), rng))
    kept: list[datetime] = []  # a release only when it certifies a newer run
    for t in times:
        last = max((n for n in golden if ready[n] <= t), default=0)
        if last > max((n for n in golden if kept and ready[n] <= kept[-1]), default=0):
            kept.append(t)
    times = kept

    # The decertified run: first certified in the second release (or the first) below that
    # release's newest run, and gone from the next release on.
    def first_release(n: int) -> int:
        return next(i for i, t in enumerate(times) if ready[n] <= t)

    at = 1 if len(times) > 2 else 0
    candidates = [n for n in golden if first_release(n) == at
                  and n < max(m for m in golden if ready[m] <= times[at])]
    dropped = rng.choice(candidates) if len(times) > 1 and candidates else None

    files: list[CertFile] = []
    contents = []
    for i, t in enumerate(times):
        gold = {str(n): v for n, v in golden.items()
                if ready[n] <= t and not (n == dropped and i > at)}
        muon = dict(gold)
        muon.update({str(n): dcs[n] for n in sorted(bad) if ready[n] <= t})
        last = max(map(int, gold))
        contents.append((t, f"{CLASS}/Cert_Collisions2024_{first}_{last}", gold, muon))
    for i, (t, stem, gold, muon) in enumerate(contents):
        nxt = contents[i + 1][0] if i + 1 < len(contents) else None
        for suffix, content, delay in (("Golden", gold, 0), ("Muon", muon, 3)):
            path = f"{stem}_{suffix}.json"
            files.append(CertFile(
                path, t + timedelta(minutes=delay), content, suffix.lower(),
                moved_at=nxt + timedelta(minutes=delay) if nxt else None,
                moved_to=OUT_TO_DATE + path.rsplit("/", 1)[1] if nxt else None))
        era_at = _release_time(t + timedelta(days=rng.uniform(5, 10)), rng)
        files.append(CertFile(f"{CLASS}/2024C_Golden.json", era_at, gold, "era"))
        files.append(CertFile(f"{CLASS}/2024C_Muon.json", era_at + timedelta(minutes=2), muon,
                              "era"))

    run_cert: dict[int, RunCertification] = {}
    golden_paths = [f for f in files if f.kind == "golden"]
    for r in pp:
        holding = [f for f in golden_paths if str(r.number) in f.content]
        first_file = holding[0] if holding else None
        gone = next((f for f in golden_paths if first_file is not None
                     and f.published_at > first_file.published_at
                     and str(r.number) not in f.content), None)
        run_cert[r.number] = RunCertification(
            r.number, ready[r.number], first_file.path if first_file else None,
            first_file.published_at if first_file else None,
            gone.path if gone else None, gone.published_at if gone else None)
    return files, run_cert
