"""Building a world from a profile and a seed: fills and runs, files and their DIALS
ingestion, planted gaps and failures, certification JSONs; same inputs, same world."""

from __future__ import annotations

import math
import random
import uuid
from dataclasses import replace
from datetime import datetime, timedelta
from functools import lru_cache

from .basics import stable_int
from .entities import CertFile, Dataset, DqmFile, Fill, MlModel, Run
from .model import World
from .profiles import ECAL_MES, PROFILES, Profile


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
    zb = Dataset(15102369, "/ZeroBias/Run2024C-PromptReco-v1/DQMIO", ("tracker", "ecal"),
                 p.start - timedelta(days=30))
    ex = Dataset(15102368, "/StreamExpress/Run2024C-Express-v1/DQMIO", ("tracker", "csc"),
                 p.start - timedelta(days=30))
    datasets = [ex, zb]

    # Runs held back in DIALS for days (a stuck ingestion), and runs flagged bad.
    stable = [r for r in runs if r.stable_beam]
    held_back = frozenset(r.number for r in rng.sample(stable[len(stable) // 3:], 2))
    bad = frozenset(r.number for r in rng.sample(stable, max(1, len(stable) // 8)))

    files: list[DqmFile] = []
    missing: dict[tuple[int, int], frozenset[int]] = {}
    for d in datasets:
        express = d.primary == "StreamExpress"
        for r in runs:
            if not express and not r.stable_beam:
                continue  # PromptReco of ZeroBias only for collision runs
            # Express is registered ~1 h after the run, PromptReco after the ~48 h delay.
            reg = r.end + timedelta(hours=rng.uniform(0.5, 1.5) if express
                                    else rng.uniform(46, 52))
            lag = timedelta(hours=rng.uniform(1, 8))
            if r.number in held_back and not express:
                lag += timedelta(days=3)
            files.extend(_split_files(d, r, reg, lag, rng))
        # Planted LS gaps: single LS without per-LS data in a few runs.
        candidates = [r for r in runs if r.stable_beam and r.n_ls > 20]
        for r in rng.sample(candidates, min(3, len(candidates))):
            k = rng.randint(1, 4)
            missing[(d.dataset_id, r.number)] = frozenset(rng.sample(range(2, r.n_ls), k))
    # Planted: one ZeroBias file whose ingestion failed for good.
    multi = [f for f in files if f.dataset_id == zb.dataset_id and f.first_ls > 1]
    if multi:
        victim = rng.choice(multi)
        files[files.index(victim)] = replace(
            victim, final_status="COPY_ERROR",
            err_trace="OSError: XRootD error [3011] No servers are available to read the file.",
        )

    cert_files = _build_certification(p, runs, bad, rng)
    mes = {"tracker": p.tracker_mes, "ecal": ECAL_MES}
    models = [
        MlModel(1, "model_bpix_l1_digi_nmf_v1.onnx",
                "PixelPhase1/Phase1_MechanicalView/PXBarrel/digi_occupancy_per_SignedModuleCoord_"
                "per_SignedLadderCoord_PXLayer_1", True, "tracker"),
        MlModel(2, "model_charge_l1_ae_v0.onnx", "PixelPhase1/Tracks/PXBarrel/charge_PXLayer_1",
                False, "tracker"),
    ]
    last_end = max(r.end for r in runs)
    return World(
        profile=p, seed=seed, fills=fills, runs=runs, datasets=datasets, files=files,
        mes_by_workspace=mes, missing_ls=missing, cert_files=cert_files,
        held_back_runs=held_back, bad_runs=bad, ml_models=models,
        # Default "now": a day after the last run ended, so the newest runs are still
        # waiting for PromptReco/DIALS and the latest golden JSON lags behind.
        default_now=(last_end + timedelta(days=1)).replace(microsecond=0),
    )


def _build_runs(p: Profile, rng: random.Random) -> tuple[list[Fill], list[Run]]:
    fills: list[Fill] = []
    runs: list[Run] = []
    t = p.start
    fill_no, run_no = 9510, 379412
    end = p.start + timedelta(days=p.days)
    planted_big = False
    while t < end:
        fill_start = t
        bunches = rng.choice([1190, 2340, 2352, 2448])
        stable_start = t + timedelta(minutes=rng.uniform(30, 60))
        t = stable_start
        n_runs = rng.randint(*p.runs_per_fill)
        for _ in range(n_runs):
            n_ls = int(min(max(rng.lognormvariate(math.log(p.ls_median), p.ls_sigma),
                               p.ls_clip[0]), p.ls_clip[1]))
            if p.big_run_ls and not planted_big and len(runs) >= 5:
                n_ls, planted_big = p.big_run_ls, True
            runs.append(Run(run_no, fill_no, t, n_ls, True, round(rng.uniform(48, 64), 2)))
            t = runs[-1].end + timedelta(minutes=rng.uniform(3, 25))
            run_no += rng.randint(1, 6)
        stable_end = t
        fills.append(Fill(fill_no, fill_start, t + timedelta(minutes=20), stable_start,
                          stable_end, bunches))
        # Between fills: a short run without stable beams now and then (not certifiable).
        t += timedelta(minutes=30)
        if rng.random() < 0.5:
            n_ls = rng.randint(5, 30)
            runs.append(Run(run_no, fill_no, t, n_ls, False, 0.0))
            t = runs[-1].end
            run_no += rng.randint(1, 6)
        t += timedelta(hours=rng.uniform(*p.fill_gap_hours))
        fill_no += rng.randint(1, 4)
    return fills, runs


def _split_files(d: Dataset, r: Run, registered: datetime, lag: timedelta,
                 rng: random.Random) -> list[DqmFile]:
    """1–3 files per run with contiguous LS ranges; one DBS block per dataset and day."""
    n_files = 1 if r.n_ls < 30 else rng.randint(1, 3)
    cuts = sorted(rng.sample(range(2, r.n_ls + 1), n_files - 1)) if n_files > 1 else []
    bounds = [1, *cuts, r.n_ls + 1]
    block_uuid = uuid.UUID(int=stable_int(d.name, r.end.date(), bits=128))
    block = f"{d.name}#{block_uuid}"
    out = []
    kind = "express" if d.primary == "StreamExpress" else "data"
    for i in range(n_files):
        first, last = bounds[i], bounds[i + 1] - 1
        guid = str(uuid.UUID(int=stable_int(d.dataset_id, r.number, i, bits=128))).upper()
        lfn = (f"/store/{kind}/{d.era}/{d.primary}/DQMIO/{d.processing_string}-v"
               f"{d.processing_version}/000/{r.number // 1000:03d}/{r.number % 1000:03d}/00000/"
               f"{guid}.root")
        start = _seconds(registered + timedelta(minutes=rng.uniform(5, 60)))
        out.append(DqmFile(
            file_id=15540000000 + stable_int(d.dataset_id, r.number, i) % 400000000,
            dataset_id=d.dataset_id, run=r.number, first_ls=first, last_ls=last, lfn=lfn,
            size=int((last - first + 1) * rng.uniform(0.4e6, 1.2e6)), block_name=block,
            registered_at=_seconds(registered), ingest_started_at=start,
            ingested_at=_seconds(start + lag),
        ))
    return out


def _seconds(value: datetime) -> datetime:
    """Whole seconds, as every service (and the truth) prints times."""
    return value.replace(microsecond=0)


def _build_certification(p: Profile, runs: list[Run], bad: frozenset[int],
                         rng: random.Random) -> list[CertFile]:
    """Cumulative Golden/Muon JSONs every 2 days, a daily DCS-only JSON, and traps."""
    first = runs[0].number
    files: list[CertFile] = []
    dcs_ranges: dict[int, list[list[int]]] = {}
    golden_ranges: dict[int, list[list[int]]] = {}
    for r in runs:
        if not r.stable_beam:
            continue
        lo = rng.randint(1, 3)
        dcs_ranges[r.number] = [[lo, r.n_ls]]
        if r.number in bad:
            continue
        if r.n_ls > 40 and rng.random() < 0.25:  # partly certified: a bad stretch inside
            cut = rng.randint(lo + 5, r.n_ls - 10)
            golden_ranges[r.number] = [[lo, cut], [cut + 6, r.n_ls]]
        else:
            golden_ranges[r.number] = [[lo, r.n_ls]]
    last_end = max(r.end for r in runs)
    day = p.start.replace(hour=0, minute=0, second=0)
    cls = "Collisions24"
    # A file is published when its content changes: a new name, as on CAF.
    last_dcs: dict = {}
    last_gold: dict = {}
    while day <= last_end + timedelta(days=8):
        dcs_at = day + timedelta(hours=19, minutes=31)
        dcs = {str(n): v for n, v in dcs_ranges.items()
               if _run_end(runs, n) <= dcs_at - timedelta(hours=2)}
        if dcs and dcs != last_dcs:
            last_dcs = dcs
            last = max(map(int, dcs))
            files.append(CertFile(
                f"{cls}/DCSOnly_JSONS/dailyDCSOnlyJSON/Collisions24_13p6TeV_{first}_{last}"
                "_DCSOnly_TkPx.json", dcs_at, dcs))
        # Golden and Muon: every second day at 10:00, runs certified ~4 days after they end.
        if (day - p.start.replace(hour=0, minute=0, second=0)).days % 2 == 1:
            at = day + timedelta(hours=10, minutes=rng.randint(0, 59))
            gold = {str(n): v for n, v in golden_ranges.items()
                    if _run_end(runs, n) <= at - timedelta(days=4)}
            if gold and gold != last_gold:
                last_gold = gold
                last = max(map(int, gold))
                files.append(CertFile(f"{cls}/Cert_Collisions2024_{first}_{last}_Golden.json",
                                      at, gold))
                muon = dict(gold)
                muon.update({str(n): v for n, v in dcs_ranges.items()
                             if str(n) not in gold and int(n) <= last})
                files.append(CertFile(f"{cls}/Cert_Collisions2024_{first}_{last}_Muon.json",
                                      at + timedelta(minutes=3), muon))
        day += timedelta(days=1)
    # Traps a CAF consumer must not pick: a lower-case 'golden' pp-ref file published last,
    # and an era file.
    t0 = p.start + timedelta(days=p.days + 9)
    some = dict(list(golden_ranges.items())[:2])
    files.append(CertFile(f"{cls}/Cert_Collisions2024_ppref_{first}_{first + 5}_golden.json",
                          t0, {str(k): v for k, v in some.items()}))
    files.append(CertFile(f"{cls}/2024C_Golden.json", p.start + timedelta(days=3),
                          {str(k): v for k, v in some.items()}))
    files.sort(key=lambda c: c.published_at)
    return files


def _run_end(runs: list[Run], number: int) -> datetime:
    for r in runs:
        if r.number == number:
            return r.end
    raise KeyError(number)
