"""World -> OMS rows: runs, lumisections, fills, HLT paths and trigger rates at a clock, in
attribute-table order.

Lumisection rows are built once per run (values do not depend on the clock, only how many
of them exist does); ended runs and fills are cached too.
"""

from __future__ import annotations

from datetime import UTC, datetime
from functools import lru_cache

from ..world.basics import LS_SECONDS, stable_int
from ..world.entities import Fill, Run
from ..world.model import World
from ..world.omsgaps import DCS, LUMI
from .attributes import (
    LS_ATTRS,
    OTHER_BITS,
    PPS_BITS,
    RUN_ATTRS,
    TRACKER_BITS,
    UNMONITORED_BITS,
    Row,
)

COMPONENTS = ["CSC", "DAQ", "DCS", "DQM", "DT", "ECAL", "ES", "GEM", "HCAL", "HF", "PIXEL",
              "PIXEL_UP", "RPC", "SCAL", "TCDS", "TRACKER", "TRG"]
RECORDED_SHARE = 0.97  # as the DIALS twin's lumi endpoint


def _unit(*parts: object) -> float:
    """A deterministic number in [0, 1) for the parts."""
    return stable_int("oms", *parts) / float(1 << 63)


@lru_cache(maxsize=8)
def _fills_by_number(world: World) -> dict[int, Fill]:
    return {f.number: f for f in world.fills}


def _injection_scheme(bunches: int) -> str:
    if bunches < 12:  # a few single bunches, as in special low-energy fills
        return f"Single_{bunches}b_{bunches - 1}_{bunches - 1}_{bunches - 1}"
    return (f"25ns_{bunches}b_{bunches - 12}_{bunches * 93 // 100}_{bunches * 95 // 100}"
            f"_144bpi_{bunches // 144 + 1}inj")


def ls_started(run: Run, now: datetime) -> int:
    """How many LS of the run have started at `now`."""
    if now < run.start:
        return 0
    return min(run.n_ls, int((now - run.start).total_seconds() // LS_SECONDS) + 1)


def _other_bad_stretch(world: World, run: Run) -> tuple[str, range]:
    """A few runs have a non-tracker subsystem off for a while (not in the TkPx JSON)."""
    if not run.stable_beam or _unit("dcs-bad", world.seed, run.number) >= 0.15:
        return "", range(0)
    bit = OTHER_BITS[stable_int("dcs-bit", world.seed, run.number) % len(OTHER_BITS)]
    first = 1 + stable_int("dcs-first", world.seed, run.number) % run.n_ls
    return bit, range(first, min(run.n_ls, first + 3 + run.n_ls // 10) + 1)


@lru_cache(maxsize=4096)
def ls_table(world: World, run_number: int) -> tuple[Row, ...]:
    """Every lumisection row of a run, in LS_ATTRS order; the clock only truncates it."""
    run = world.run_by_number[run_number]
    # tracker/pixel ready where the DCS-only JSONs say so
    ready = {ls for lo, hi in world.dcs_ranges.get(run_number, []) for ls in range(lo, hi + 1)}
    bad_bit, bad_ls = _other_bad_stretch(world, run)
    stable = run.stable_beam
    rows: list[Row] = []
    delivered_sum = recorded_sum = 0.0
    for ls in range(1, run.n_ls + 1):
        delivered = world.lumi_per_ls(run_number, ls) * 1e-6  # /ub -> /pb
        recorded = delivered * RECORDED_SHARE
        delivered_sum += delivered
        recorded_sum += recorded
        inst = delivered / LS_SECONDS * 1e2  # /pb/s -> 10^34 cm^-2 s^-1
        tracker = ls in ready
        others = tuple(not (bit == bad_bit and ls in bad_ls) for bit in OTHER_BITS)
        rows.append((
            run_number, ls, run.fill, run.ls_start(ls), run.ls_start(ls + 1),
            round(delivered_sum, 6), round(recorded_sum, 6), round(delivered, 6),
            round(recorded, 6), round(inst, 6), round(inst * 0.999, 6), run.pileup,
            stable and tracker, stable, True, True, stable, True, stable,
            2 if stable else 0, "2p0E34" if stable else "Circulating",
            *(tracker,) * len(TRACKER_BITS), *others, *(None,) * len(UNMONITORED_BITS),
            *(stable,) * len(PPS_BITS),
        ))
    return tuple(rows)


LS = {a.name: i for i, a in enumerate(LS_ATTRS)}
RUN = {a.name: i for i, a in enumerate(RUN_ATTRS)}
#: the columns each null kind of world/omsgaps.py blanks
NULLED = {
    LUMI: frozenset(LS[a] for a in ("pileup", "delivered_lumi_per_lumisection",
                                    "recorded_lumi_per_lumisection")),
    DCS: frozenset(i for name, i in LS.items() if name.endswith("_ready")),
}


@lru_cache(maxsize=4096)
def served_ls_table(world: World, run_number: int) -> tuple[Row, ...]:
    """The lumisection rows OMS serves: `ls_table` without the run's missing LS and with its
    null cells. Run totals and trigger rates keep using the full table, as production's
    run records and rate counters do not depend on a lumisection row being there."""
    missing = world.oms_missing_ls.get(run_number, frozenset())
    nulls = world.oms_null_ls.get(run_number, {})
    rows: list[Row] = []
    for row in ls_table(world, run_number):
        ls = row[LS["lumisection_number"]]
        if ls in missing:
            continue
        blank = NULLED.get(nulls.get(ls, ""), frozenset())
        rows.append(tuple(None if i in blank else v for i, v in enumerate(row)) if blank
                    else row)
    return tuple(rows)


def _run_totals(world: World, run: Run, n_ls: int) -> tuple[float, float, float, float]:
    """(delivered, recorded, init_lumi, end_lumi) over the first n_ls LS."""
    table = ls_table(world, run.number)
    if n_ls == 0:
        return 0.0, 0.0, 0.0, 0.0
    last = table[n_ls - 1]
    return (last[LS["delivered_lumi"]], last[LS["recorded_lumi"]], table[0][LS["init_lumi"]],
            last[LS["end_lumi"]])


@lru_cache(maxsize=4096)
def ended_run_row(world: World, run_number: int) -> Row:
    return run_row(world, world.run_by_number[run_number], None)


def run_row(world: World, run: Run, now: datetime | None) -> Row:
    """A run as OMS shows it; `now` is given only while the run is ongoing."""
    ongoing = now is not None
    n_ls = ls_started(run, now) if ongoing else run.n_ls
    delivered, recorded, init_lumi, end_lumi = _run_totals(world, run, n_ls)
    duration = int((run.end - run.start).total_seconds())
    stable = run.stable_beam
    u = _unit("run", world.seed, run.number)
    l1_rate = round((95_000 + 8_000 * u) if stable else (800 + 400 * u), 2)
    hlt_rate = round((1_700 + 400 * u) if stable else (60 + 40 * u), 3)
    hlt_size = round(1.0 + 0.3 * u, 3)
    fill = _fills_by_number(world).get(run.fill)
    mode = "collisions2024/v53" if stable else "circulating2024/v12"
    menu = "2e34/v1.1.0" if stable else "circulating/v1.0.2"
    return (
        run.number, run.fill, run.start, None if ongoing else run.end,
        run.ls_start(n_ls) if ongoing else run.end, None if ongoing else duration, n_ls,
        None if ongoing else delivered, None if ongoing else recorded, init_lumi,
        None if ongoing else end_lumi, stable, run.energy, round(3.8 - 0.002 * u, 3),
        "PROTONS", "PROTON", "PROTON", "l1_trg_collisions2024/v104", "collisions2024/v104",
        f"/cdaq/physics/Run2024/{menu}/HLT/V{1 + run.number % 3}",
        "L1Menu_Collisions2024_v1_2_0", mode, mode.split("/")[0], f"l1_hlt_{mode}",
        "GLOBAL-RUN", "LHC", "CMSSW_14_0_5_patch2", list(COMPONENTS), [],
        l1_rate, None if ongoing else int(l1_rate * duration), hlt_rate, hlt_size,
        round(hlt_rate * hlt_size / 1000, 6), None if ongoing else int(hlt_rate * duration),
        2 if stable else 0, True, _injection_scheme(fill.bunches) if fill else None,
    )


@lru_cache(maxsize=1024)
def ended_fill_row(world: World, fill_number: int) -> Row:
    return fill_row(world, _fills_by_number(world)[fill_number], None)


def fill_row(world: World, fill: Fill, now: datetime | None) -> Row:
    """A fill as OMS shows it; `now` is given only while the fill is ongoing."""
    runs = [r for r in world.runs if r.fill == fill.number]
    until = now or datetime.max.replace(tzinfo=UTC)
    totals = [_run_totals(world, r, ls_started(r, until)) for r in runs]
    delivered = round(sum(t[0] for t in totals), 6)
    recorded = round(sum(t[1] for t in totals), 6)
    stable_runs = [r for r in runs if r.stable_beam]
    peak = max((t[2] for t in totals), default=0.0)
    stable_start = fill.stable_start if fill.stable_start and fill.stable_start <= until else None
    stable_end = fill.stable_end if fill.stable_end and fill.stable_end <= until else None
    stable_s = (stable_end - stable_start).total_seconds() if stable_start and stable_end else 0
    running_s = sum((r.end - r.start).total_seconds() for r in stable_runs if r.end <= until)
    b = fill.bunches
    intensity = round(b * 1.6 * (0.98 + 0.04 * _unit("fill", world.seed, fill.number)), 2)
    first_run = min((r.start for r in runs), default=None)
    return (
        fill.number, fill.start, None if now else fill.end, stable_start, stable_end,
        None if now else int((fill.end - fill.start).total_seconds()), delivered, recorded,
        totals[0][2] if totals else 0.0, peak,
        max((r.pileup for r in runs), default=0.0),
        round(peak * 1e4 / b / 1.6**2, 4), round(recorded / delivered, 4) if delivered else 0.0,
        round(min(1.0, running_s / stable_s), 4) if stable_s else 0.0,
        b + 12, b + 12, b, b, 30.0, 160.0, intensity, intensity, fill.energy, 3.8,
        runs[0].era if runs else None, _injection_scheme(b), "PROTONS", "PROTON", "PROTON",
        min((r.number for r in runs), default=None), max((r.number for r in runs), default=None),
        0,
        int((first_run - fill.stable_start).total_seconds())
        if first_run and fill.stable_start and first_run >= fill.stable_start else None,
        None if now else int((fill.end - fill.start).total_seconds()) - 1200,
        None if now else 1200,
        stable_start is not None,
    )


# --------------------------------------------------------------------------- trigger rates

F_REV = 11245.5  # LHC revolution frequency, Hz
#: The twin's HLT menu: (path without version, version in era A, rate model, scale, dataset).
#: Models: "bunches" = colliding bunches · f_rev · scale (ZeroBias: one prescaled accept per
#: crossing); "orbit" = f_rev · scale (one crossing per orbit); "lumi" = scale Hz per
#: 10^34 cm^-2 s^-1 of the LS's instantaneous luminosity (∝ pileup · bunches). Scales are the
#: prescale column 2 ("2p0E34") values; column 0 (no stable beams) disables every path.
HLT_MENU = (
    ("HLT_Physics", 12, "lumi", 25.0, "HLTPhysics"),
    ("HLT_ZeroBias", 10, "bunches", 2e-6, "ZeroBias"),
    ("HLT_ZeroBias_FirstCollisionAfterAbortGap", 12, "orbit", 1e-3, "ZeroBias"),
    ("HLT_IsoMu24", 15, "lumi", 110.0, "Muon0"),
    ("HLT_PFJet500", 26, "lumi", 12.0, "JetMET0"),
    ("HLT_Ele32_WPTight_Gsf", 21, "lumi", 95.0, "EGamma0"),
)
DATASETS = tuple(sorted({entry[4] for entry in HLT_MENU}))


@lru_cache(maxsize=4096)
def hlt_paths(world: World, run_number: int) -> tuple[tuple[int, str], ...]:
    """(path_id, versioned name) per menu entry: versions step with the era, ids with the
    run's HLT key (as real path ids belong to an HLT configuration)."""
    run = world.run_by_number[run_number]
    letter = run.era[-1:].upper()
    step = (ord(letter) - ord("A")) // 2 if letter.isalpha() else 0
    hlt_key = ended_run_row(world, run_number)[RUN["hlt_key"]]
    base = 2_000_000 + stable_int("hltmenu", hlt_key) % 9_000 * 100
    return tuple((base + i, f"{name}_v{version + step}")
                 for i, (name, version, *_rest) in enumerate(HLT_MENU))


def _expected_rate(model: str, scale: float, bunches: int, inst: float) -> float:
    if model == "bunches":
        return bunches * F_REV * scale
    if model == "orbit":
        return F_REV * scale
    return inst * scale


@lru_cache(maxsize=1024)
def hltrate_tables(world: World, run_number: int) -> tuple[tuple[Row, ...], ...]:
    """Per menu path, one row per LS in HLTPATHRATES_ATTRS order; the clock only truncates."""
    run = world.run_by_number[run_number]
    fill = _fills_by_number(world).get(run.fill)
    bunches = fill.bunches if fill else 0
    lumis = ls_table(world, run_number)
    tables = []
    for (path_id, name), (_base, _v, model, scale, _ds) in zip(
            hlt_paths(world, run_number), HLT_MENU, strict=True):
        rows: list[Row] = []
        for ls_row in lumis:
            ls = ls_row[LS["lumisection_number"]]
            counter = 0
            if ls_row[LS["prescale_index"]] != 0:
                wobble = 0.98 + 0.04 * _unit("hlt", world.seed, run_number, name, ls)
                expected = _expected_rate(model, scale, bunches, ls_row[LS["init_lumi"]])
                counter = round(expected * LS_SECONDS * wobble)
            rows.append((run_number, path_id, name, ls, ls, ls_row[LS["start_time"]],
                         round(counter / LS_SECONDS, 4), counter))
        tables.append(tuple(rows))
    return tuple(tables)


@lru_cache(maxsize=1024)
def datasetrate_tables(world: World, run_number: int) -> tuple[tuple[Row, ...], ...]:
    """Per dataset (by name), one row per LS in DATASETRATES_ATTRS order: the events are the
    sum of its paths' counters (the twin's paths never overlap)."""
    run = world.run_by_number[run_number]
    paths = hltrate_tables(world, run_number)
    lumis = ls_table(world, run_number)
    tables = []
    for dataset in DATASETS:
        members = [t for t, entry in zip(paths, HLT_MENU, strict=True) if entry[4] == dataset]
        rows: list[Row] = []
        for i, ls_row in enumerate(lumis):
            ls = ls_row[LS["lumisection_number"]]
            events = sum(t[i][-1] for t in members)
            rows.append((run_number, dataset, ls, ls, ls == run.n_ls, ls_row[LS["start_time"]],
                         round(events / LS_SECONDS, 4), events, ls_row[LS["cms_active"]]))
        tables.append(tuple(rows))
    return tuple(tables)
