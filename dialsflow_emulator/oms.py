"""CMS OMS aggregation API twin: `/agg/api/v1/{runs,lumisections,fills}` as omsapi 0.9.8.1 sees it.

Contract: shared/reference/oms_api.md (§1 endpoints, §2 query parameters, §3 date-times,
§4 JSON:API-like shapes, §5 auth, §6 attribute tables). Every row is derived from the
`World` at the request's clock: a run, lumisection or fill exists once it has started.

Choices where the reference is unsure (marked [guess] there):
- an attribute unknown to the resource in `filter`, `sort` or `fields` is a 400 with a
  JSON:API `errors` body (§4.3), so a typo never silently widens a query;
- `CT` means "contains" (substring for strings, element for lists); `LIKE` takes `%`/`_`
  and applies to strings only; list attributes (`components`) match if any element does;
- `include=data_only` drops `links` and the top-level `meta`;
- lumisection `id` is "<run>_<ls>", fill `id` the fill number as text; cumulative
  lumisection lumis are per run; luminosities are in pb^-1 and follow the DIALS twin's
  brilcalc model (`World.lumi_per_ls`), so OMS and DIALS agree on every run.

Speed: lumisection rows are built once per run (values do not depend on the clock, only
how many of them exist does) and kept as tuples; ended runs and fills are cached too, and
`run_number` / `fill_number` filters select runs before any lumisection row is touched.
"""

from __future__ import annotations

import operator
import re
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any
from urllib.parse import urlencode

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from .httputil import base_url, bearer_token, json_response
from .state import OMS_AUDIENCE, EmulatorState
from .tokens import TokenError
from .world import LS_SECONDS, Fill, Run, World, iso, stable_int

PREFIX = "/agg/api/v1"
DEFAULT_LIMIT = 100  # CMSSW OMSAccess.h: the server's page size when none is given
MAX_LIMIT = 100_000  # pixelae: "hard limit in OMS API"
OPERATORS = ("EQ", "NEQ", "LT", "GT", "LE", "GE", "LIKE", "CT")

Row = tuple[Any, ...]

UNAUTHORIZED = (
    b"<html>\n<head><title>401 Unauthorized</title></head>\n<body>\n"
    b"<center><h1>401 Unauthorized</h1></center>\n<hr><center>OMS API gateway</center>\n"
    b"</body>\n</html>\n"
)

# --------------------------------------------------------------------------- attributes

INT, FRACTION, BOOL, STRING, DATETIME, LIST = (
    "Integer", "Fraction", "Boolean", "String", "DateTime", "List")
PB, INST = "pb^{-1}", "10^{34}cm^{-2}s^{-1}"


@dataclass(frozen=True)
class Attr:
    """One attribute as `/meta` describes it (§4.2); `units` also feeds `meta.row`."""

    name: str
    api_type: str
    description: str
    units: str = ""

    @property
    def title(self) -> str:
        return self.name.replace("_", " ").title()

    def meta(self) -> dict[str, Any]:
        return {"title": self.title, "description": self.description,
                "api_type": self.api_type, "units": self.units,
                "sortable": True, "searchable": True, "projectable": True}


RUN_ATTRS = (
    Attr("run_number", INT, "Run number"),
    Attr("fill_number", INT, "LHC fill number"),
    Attr("start_time", DATETIME, "Run start time (UTC)"),
    Attr("end_time", DATETIME, "Run end time (UTC); null while the run is ongoing"),
    Attr("last_update", DATETIME, "Last time the run record changed"),
    Attr("duration", INT, "Run duration; null while ongoing", "s"),
    Attr("last_lumisection_number", INT, "Last lumisection number"),
    Attr("delivered_lumi", FRACTION, "Integrated luminosity delivered by the LHC", PB),
    Attr("recorded_lumi", FRACTION, "Integrated luminosity recorded by CMS", PB),
    Attr("init_lumi", FRACTION, "Instantaneous luminosity at run start", INST),
    Attr("end_lumi", FRACTION, "Instantaneous luminosity at run end", INST),
    Attr("stable_beam", BOOL, "Stable beams during the run"),
    Attr("energy", INT, "Beam energy", "GeV"),
    Attr("b_field", FRACTION, "Magnetic field", "T"),
    Attr("fill_type_runtime", STRING, "Fill type at run time"),
    Attr("fill_type_party1", STRING, "Particle type of beam 1"),
    Attr("fill_type_party2", STRING, "Particle type of beam 2"),
    Attr("l1_key", STRING, "L1 trigger key"),
    Attr("l1_key_stripped", STRING, "L1 trigger key without prefix"),
    Attr("hlt_key", STRING, "HLT configuration key"),
    Attr("l1_menu", STRING, "L1 menu"),
    Attr("l1_hlt_mode", STRING, "L1+HLT mode"),
    Attr("l1_hlt_mode_stripped", STRING, "L1+HLT mode without version"),
    Attr("trigger_mode", STRING, "Trigger mode"),
    Attr("sequence", STRING, "Run sequence (GLOBAL-RUN for global runs)"),
    Attr("clock_type", STRING, "Clock source"),
    Attr("cmssw_version", STRING, "CMSSW version of the HLT"),
    Attr("components", LIST, "Subsystems included in the run"),
    Attr("components_out", LIST, "Subsystems excluded from the run"),
    Attr("l1_rate", FRACTION, "Average L1 accept rate", "Hz"),
    Attr("l1_triggers_counter", INT, "Number of L1 accepts; null while ongoing"),
    Attr("hlt_physics_rate", FRACTION, "Average HLT physics stream rate", "Hz"),
    Attr("hlt_physics_size", FRACTION, "Average HLT physics event size", "MB"),
    Attr("hlt_physics_throughput", FRACTION, "Average HLT physics throughput", "GB/s"),
    Attr("hlt_physics_counter", INT, "HLT physics events; null while ongoing"),
    Attr("initial_prescale_index", INT, "Prescale column at run start"),
    Attr("tier0_transfer", BOOL, "Data transferred to Tier-0"),
    Attr("era", STRING, "Acquisition era"),
    Attr("injection_scheme", STRING, "LHC injection scheme of the fill"),
)

#: Subsystem DCS bits of a lumisection (§6.2), grouped by how the world drives them.
TRACKER_BITS = ("bpix", "fpix", "tibtid", "tob", "tecp", "tecm")
OTHER_BITS = ("ebp", "ebm", "eep", "eem", "esp", "esm", "hbhea", "hbheb", "hbhec", "hf", "ho",
              "rpc", "dt0", "dtp", "dtm", "cscp", "cscm", "gem", "gemp", "gemm")
UNMONITORED_BITS = ("castor", "zdc")
PPS_BITS = ("rp_time", "rp_sect_45", "rp_sect_56")

LS_ATTRS = (
    Attr("run_number", INT, "Run number"),
    Attr("lumisection_number", INT, "Lumisection number"),
    Attr("fill_number", INT, "LHC fill number"),
    Attr("start_time", DATETIME, "Lumisection start time (UTC)"),
    Attr("end_time", DATETIME, "Lumisection end time (UTC)"),
    Attr("delivered_lumi", FRACTION, "Delivered luminosity integrated over the run so far", PB),
    Attr("recorded_lumi", FRACTION, "Recorded luminosity integrated over the run so far", PB),
    Attr("delivered_lumi_per_lumisection", FRACTION, "Delivered luminosity in this LS", PB),
    Attr("recorded_lumi_per_lumisection", FRACTION, "Recorded luminosity in this LS", PB),
    Attr("init_lumi", FRACTION, "Instantaneous luminosity at LS start", INST),
    Attr("end_lumi", FRACTION, "Instantaneous luminosity at LS end", INST),
    Attr("pileup", FRACTION, "Average pileup"),
    Attr("physics_flag", BOOL, "Physics declared"),
    Attr("beams_stable", BOOL, "Stable beams"),
    Attr("cms_active", BOOL, "CMS taking data"),
    Attr("beam1_present", BOOL, "Beam 1 present"),
    Attr("beam1_stable", BOOL, "Beam 1 stable"),
    Attr("beam2_present", BOOL, "Beam 2 present"),
    Attr("beam2_stable", BOOL, "Beam 2 stable"),
    Attr("prescale_index", INT, "Prescale column"),
    Attr("prescale_name", STRING, "Prescale column name"),
    *(Attr(f"{bit}_ready", BOOL, f"DCS: {bit} ready")
      for bit in (*TRACKER_BITS, *OTHER_BITS, *UNMONITORED_BITS, *PPS_BITS)),
)

FILL_ATTRS = (
    Attr("fill_number", INT, "LHC fill number"),
    Attr("start_time", DATETIME, "Fill start time (UTC)"),
    Attr("end_time", DATETIME, "Fill end time (UTC); null while the fill is ongoing"),
    Attr("start_stable_beam", DATETIME, "Start of stable beams"),
    Attr("end_stable_beam", DATETIME, "End of stable beams"),
    Attr("duration", INT, "Fill duration; null while ongoing", "s"),
    Attr("delivered_lumi", FRACTION, "Integrated luminosity delivered in the fill", PB),
    Attr("recorded_lumi", FRACTION, "Integrated luminosity recorded by CMS in the fill", PB),
    Attr("init_lumi", FRACTION, "Instantaneous luminosity at the start of stable beams", INST),
    Attr("peak_lumi", FRACTION, "Peak instantaneous luminosity", INST),
    Attr("peak_pileup", FRACTION, "Peak pileup"),
    Attr("peak_specific_lumi", FRACTION, "Peak specific luminosity"),
    Attr("efficiency_lumi", FRACTION, "Recorded over delivered luminosity"),
    Attr("efficiency_time", FRACTION, "Share of stable-beam time CMS was running"),
    Attr("bunches_beam1", INT, "Bunches in beam 1"),
    Attr("bunches_beam2", INT, "Bunches in beam 2"),
    Attr("bunches_colliding", INT, "Bunches colliding at IP5"),
    Attr("bunches_target", INT, "Target number of bunches"),
    Attr("beta_star", FRACTION, "Beta* at IP5", "cm"),
    Attr("crossing_angle", FRACTION, "Half crossing angle at IP5", "{\\mu}rad"),
    Attr("intensity_beam1", FRACTION, "Beam 1 intensity", "10^{11}"),
    Attr("intensity_beam2", FRACTION, "Beam 2 intensity", "10^{11}"),
    Attr("energy", INT, "Beam energy", "GeV"),
    Attr("b_field", FRACTION, "Magnetic field", "T"),
    Attr("era", STRING, "Acquisition era"),
    Attr("injection_scheme", STRING, "LHC injection scheme"),
    Attr("fill_type_runtime", STRING, "Fill type"),
    Attr("fill_type_party1", STRING, "Particle type of beam 1"),
    Attr("fill_type_party2", STRING, "Particle type of beam 2"),
    Attr("first_run_number", INT, "First CMS run of the fill"),
    Attr("last_run_number", INT, "Last CMS run of the fill"),
    Attr("downtime", INT, "Downtime during stable beams", "s"),
    Attr("to_ready_time", INT, "From stable beams to CMS ready", "s"),
    Attr("to_dump_ready_time", INT, "From stable beams to ready-for-dump", "s"),
    Attr("dump_ready_to_dump_time", INT, "From ready-for-dump to beam dump", "s"),
    Attr("stable_beams", BOOL, "The fill reached stable beams"),
)

# --------------------------------------------------------------------------- world -> rows

COMPONENTS = ["CSC", "DAQ", "DCS", "DQM", "DT", "ECAL", "ES", "GEM", "HCAL", "HF", "PIXEL",
              "PIXEL_UP", "RPC", "SCAL", "TCDS", "TRACKER", "TRG"]
RECORDED_SHARE = 0.97  # as the DIALS twin's lumi endpoint


def _unit(*parts: object) -> float:
    """A deterministic number in [0, 1) for the parts."""
    return stable_int("oms", *parts) / float(1 << 63)


@lru_cache(maxsize=8)
def _fills_by_number(world: World) -> dict[int, Fill]:
    return {f.number: f for f in world.fills}


@lru_cache(maxsize=8)
def _dcs_ranges(world: World) -> dict[int, list[list[int]]]:
    """Tracker/pixel-ready LS ranges of each run, as the DCS-only JSONs publish them."""
    out: dict[int, list[list[int]]] = {}
    for cert in world.cert_files:
        if "DCSOnly" in cert.path:
            out.update((int(run), ranges) for run, ranges in cert.content.items())
    return out


def _injection_scheme(bunches: int) -> str:
    return (f"25ns_{bunches}b_{bunches - 12}_{bunches * 93 // 100}_{bunches * 95 // 100}"
            f"_144bpi_{bunches // 144 + 1}inj")


def _ls_started(run: Run, now: datetime) -> int:
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
def _ls_table(world: World, run_number: int) -> tuple[Row, ...]:
    """Every lumisection row of a run, in LS_ATTRS order; the clock only truncates it."""
    run = world.run_by_number[run_number]
    ready = {ls for lo, hi in _dcs_ranges(world).get(run_number, []) for ls in range(lo, hi + 1)}
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


def _run_totals(world: World, run: Run, n_ls: int) -> tuple[float, float, float, float]:
    """(delivered, recorded, init_lumi, end_lumi) over the first n_ls LS."""
    table = _ls_table(world, run.number)
    if n_ls == 0:
        return 0.0, 0.0, 0.0, 0.0
    last = table[n_ls - 1]
    return (last[LS["delivered_lumi"]], last[LS["recorded_lumi"]], table[0][LS["init_lumi"]],
            last[LS["end_lumi"]])


@lru_cache(maxsize=4096)
def _ended_run_row(world: World, run_number: int) -> Row:
    return _run_row(world, world.run_by_number[run_number], None)


def _run_row(world: World, run: Run, now: datetime | None) -> Row:
    """A run as OMS shows it; `now` is given only while the run is ongoing."""
    ongoing = now is not None
    n_ls = _ls_started(run, now) if ongoing else run.n_ls
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
        None if ongoing else end_lumi, stable, 6800, round(3.8 - 0.002 * u, 3),
        "PROTONS", "PROTON", "PROTON", "l1_trg_collisions2024/v104", "collisions2024/v104",
        f"/cdaq/physics/Run2024/{menu}/HLT/V{1 + run.number % 3}",
        "L1Menu_Collisions2024_v1_2_0", mode, mode.split("/")[0], f"l1_hlt_{mode}",
        "GLOBAL-RUN", "LHC", "CMSSW_14_0_5_patch2", list(COMPONENTS), [],
        l1_rate, None if ongoing else int(l1_rate * duration), hlt_rate, hlt_size,
        round(hlt_rate * hlt_size / 1000, 6), None if ongoing else int(hlt_rate * duration),
        2 if stable else 0, True, run.era, _injection_scheme(fill.bunches) if fill else None,
    )


@lru_cache(maxsize=1024)
def _ended_fill_row(world: World, fill_number: int) -> Row:
    return _fill_row(world, _fills_by_number(world)[fill_number], None)


def _fill_row(world: World, fill: Fill, now: datetime | None) -> Row:
    """A fill as OMS shows it; `now` is given only while the fill is ongoing."""
    runs = [r for r in world.runs if r.fill == fill.number]
    until = now or datetime.max.replace(tzinfo=UTC)
    totals = [_run_totals(world, r, _ls_started(r, until)) for r in runs]
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
        b + 12, b + 12, b, b, 30.0, 160.0, intensity, intensity, 6800, 3.8,
        runs[0].era if runs else None, _injection_scheme(b), "PROTONS", "PROTON", "PROTON",
        min((r.number for r in runs), default=None), max((r.number for r in runs), default=None),
        0,
        int((first_run - fill.stable_start).total_seconds())
        if first_run and fill.stable_start and first_run >= fill.stable_start else None,
        None if now else int((fill.end - fill.start).total_seconds()) - 1200,
        None if now else 1200,
        stable_start is not None,
    )


# --------------------------------------------------------------------------- resources

Keep = Callable[[int], bool]


@dataclass(frozen=True)
class Resource:
    """A queryable collection: attributes, primary key, and rows at a clock."""

    name: str
    attrs: tuple[Attr, ...]
    key: tuple[str, ...]  # primary key: default order and `id`
    scope: str  # the entity-number attribute used to pre-select entities
    rows: Callable[[World, datetime, Keep], Iterable[Row]]
    index: dict[str, int] = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "index", {a.name: i for i, a in enumerate(self.attrs)})

    def row_id(self, row: Row) -> str:
        return "_".join(str(row[self.index[k]]) for k in self.key)

    def id_filters(self, text: str) -> list[tuple[str, str]]:
        parts = text.split("_")
        if len(parts) != len(self.key):
            return [(f"filter[{self.key[0]}][EQ]", "-1")]  # matches nothing
        return [(f"filter[{k}][EQ]", v) for k, v in zip(self.key, parts, strict=True)]

    @property
    def catalogue(self) -> dict[str, Any]:
        return {a.name: a.meta() for a in self.attrs}


def _runs(world: World, now: datetime, keep: Keep) -> Iterator[Row]:
    for run in world.runs:
        if run.start <= now and keep(run.number):
            yield _ended_run_row(world, run.number) if run.end <= now else \
                _run_row(world, run, now)


def _lumisections(world: World, now: datetime, keep: Keep) -> Iterator[Row]:
    for run in world.runs:
        if run.start <= now and keep(run.number):
            yield from _ls_table(world, run.number)[:_ls_started(run, now)]


def _fills(world: World, now: datetime, keep: Keep) -> Iterator[Row]:
    for fill in world.fills:
        if fill.start <= now and keep(fill.number):
            yield _ended_fill_row(world, fill.number) if fill.end <= now else \
                _fill_row(world, fill, now)


RESOURCES = {r.name: r for r in (
    Resource("runs", RUN_ATTRS, ("run_number",), "run_number", _runs),
    Resource("lumisections", LS_ATTRS, ("run_number", "lumisection_number"), "run_number",
             _lumisections),
    Resource("fills", FILL_ATTRS, ("fill_number",), "fill_number", _fills),
)}

# --------------------------------------------------------------------------- query parsing


class QueryError(Exception):
    """A request OMS refuses; `status` and a JSON:API `errors` body."""

    def __init__(self, status: int, detail: str, parameter: str | None = None) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail
        self.parameter = parameter

    def body(self) -> dict[str, Any]:
        title = {400: "Bad Request", 404: "Not Found"}.get(self.status, "Error")
        error: dict[str, Any] = {"status": str(self.status), "title": title,
                                 "detail": self.detail}
        if self.parameter:
            error["source"] = {"parameter": self.parameter}
        return {"errors": [error]}


_DATETIME = re.compile(
    r"(\d{4}-\d{2}-\d{2})(?:[T ](\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?))?"
    r"\s*(Z|[+\- ]\d{2}(?::?\d{2})?)?", re.IGNORECASE)


def parse_datetime(text: str) -> datetime:
    """Lenient ISO 8601 (§3): optional Z/seconds/fraction, space for T, naive = UTC, and an
    offset whose '+' arrived as a space (omsapi does not URL-encode filter values)."""
    m = _DATETIME.fullmatch(text.strip())
    if m is None:
        raise ValueError(text)
    day, clock, offset = m.groups()
    offset = "+00:00" if offset is None or offset.upper() == "Z" else offset
    sign, digits = ("+" if offset[0] == " " else offset[0]), offset[1:].replace(":", "")
    value = datetime.fromisoformat(f"{day}T{clock or '00:00'}{sign}{digits[:2]}:"
                                   f"{digits[2:] or '00'}")
    return value.astimezone(UTC)


def _parse_value(attr: Attr, text: str) -> Any:
    """A filter value as the attribute's type; 'null' (any case) is SQL NULL."""
    if text.strip().lower() == "null":
        return None
    try:
        if attr.api_type == INT:
            return int(text) if re.fullmatch(r"\s*[+-]?\d+\s*", text) else float(text)
        if attr.api_type == FRACTION:
            return float(text)
        if attr.api_type == DATETIME:
            return parse_datetime(text)
    except (ValueError, OverflowError) as exc:
        raise QueryError(400, f"Invalid value '{text[:80]}' for attribute '{attr.name}' "
                         f"of type {attr.api_type}") from exc
    if attr.api_type == BOOL:
        lowered = text.strip().lower()
        if lowered not in ("true", "false", "1", "0"):
            raise QueryError(400, f"Invalid boolean '{text[:80]}' for attribute '{attr.name}'")
        return lowered in ("true", "1")
    return text


_LIKE_WILDCARDS = {"%": ".*", "_": "."}


@lru_cache(maxsize=256)
def _like(pattern: str) -> re.Pattern[str]:
    """SQL LIKE: % matches any run of characters, _ exactly one."""
    return re.compile("".join(_LIKE_WILDCARDS.get(c) or re.escape(c) for c in pattern),
                      re.DOTALL)


def _contains(value: Any, wanted: Any) -> bool:
    return isinstance(value, str) and str(wanted) in value


_COMPARE: dict[str, Callable[[Any, Any], bool]] = {
    "EQ": operator.eq, "NEQ": operator.ne, "LT": operator.lt, "GT": operator.gt,
    "LE": operator.le, "GE": operator.ge, "CT": _contains,
}


@dataclass(frozen=True)
class Filter:
    """`filter[attr][OP]=value` on column `index`, with SQL NULL semantics."""

    index: int
    attr: Attr
    op: str
    value: Any

    def test(self, row: Row) -> bool:
        v = row[self.index]
        if self.value is None:
            return (v is None) if self.op == "EQ" else (v is not None) if self.op == "NEQ" \
                else False
        if v is None:
            return False
        if isinstance(v, list):
            return self.value not in v if self.op == "NEQ" else \
                any(self._compare(e) for e in v)
        return self._compare(v)

    def _compare(self, v: Any) -> bool:
        if self.op == "LIKE":
            return _like(self.value).fullmatch(v) is not None
        try:
            return _COMPARE[self.op](v, self.value)
        except TypeError:  # e.g. a number compared with a date: no match, like SQL
            return False


@dataclass
class Query:
    """A parsed OMS query: filters, sort, projection, page, includes."""

    filters: list[Filter] = field(default_factory=list)
    sort: list[tuple[int, bool]] = field(default_factory=list)  # (column, descending)
    fields: list[int] | None = None
    offset: int = 0
    limit: int = DEFAULT_LIMIT
    include: set[str] = field(default_factory=set)


_FILTER_KEY = re.compile(r"filter\[([^\]]*)\](?:\[([^\]]*)\])?")


def _attr_index(res: Resource, name: str, parameter: str) -> int:
    name = name.strip()
    if name not in res.index:
        raise QueryError(400, f"Attribute '{name}' does not exist for resource '{res.name}'",
                         parameter)
    return res.index[name]


def _filter(res: Resource, key: str, match: re.Match[str], text: str) -> Filter:
    index = _attr_index(res, match[1], key)
    attr = res.attrs[index]
    op = (match[2] or "EQ").strip().upper()
    if op not in OPERATORS:
        raise QueryError(400, f"Unknown filter operator '{match[2]}'", key)
    if op in ("LIKE", "CT") and attr.api_type not in (STRING, LIST):
        raise QueryError(400, f"Operator {op} needs a string attribute, not '{attr.name}'", key)
    return Filter(index, attr, op, _parse_value(attr, text))


def _page_number(key: str, text: str, lowest: int) -> int:
    if not re.fullmatch(r"\s*\d{1,12}\s*", text) or int(text) < lowest:
        raise QueryError(400, f"'{key}' must be an integer >= {lowest}", key)
    return int(text)


def parse_query(res: Resource, params: Sequence[tuple[str, str]]) -> Query:
    """Raw (key, value) pairs, brackets decoded, into a Query; unknown keys are ignored."""
    q = Query()
    for key, text in params:
        if m := _FILTER_KEY.fullmatch(key):
            q.filters.append(_filter(res, key, m, text))
        elif key == "sort":
            for name in filter(None, (s.strip() for s in text.split(","))):
                desc = name.startswith("-")
                q.sort.append((_attr_index(res, name.lstrip("-+"), key), desc))
        elif key == "fields" or key == f"fields[{res.name}]":
            chosen = {_attr_index(res, n, key) for n in text.split(",") if n.strip()}
            q.fields = sorted(chosen)
        elif key == "page[offset]":
            q.offset = _page_number(key, text, 0)
        elif key == "page[limit]":
            q.limit = min(_page_number(key, text, 1), MAX_LIMIT)
        elif key == "include":
            q.include |= {part.strip() for part in text.split(",")}
    return q


# --------------------------------------------------------------------------- executing


def _scope_keep(res: Resource, filters: list[Filter]) -> Keep:
    """Entity numbers the scope filters allow, tested before any row is built."""
    scope = [f for f in filters if f.attr.name == res.scope]
    if not scope:
        return lambda number: True
    probe = [0] * len(res.attrs)

    def keep(number: int) -> bool:
        probe[res.index[res.scope]] = number
        return all(f.test(tuple(probe)) for f in scope)

    return keep


def _sort_key(index: int) -> Callable[[Row], tuple[bool, Any]]:
    """Nulls last ascending and first descending, as Oracle orders them."""
    return lambda row: (row[index] is None, 0 if row[index] is None else row[index])


def select(res: Resource, world: World, now: datetime, q: Query) -> list[Row]:
    """Matching rows in the requested order (primary key when no sort is given)."""
    keep = _scope_keep(res, q.filters)
    rows = [row for row in res.rows(world, now, keep) if all(f.test(row) for f in q.filters)]
    for index, desc in reversed(q.sort):
        rows.sort(key=_sort_key(index), reverse=desc)
    return rows


def _render(value: Any, presentation: bool) -> Any:
    if isinstance(value, datetime):
        return value.strftime("%Y-%m-%d %H:%M:%S") if presentation else iso(value)
    return value


def _resource_object(res: Resource, row: Row, columns: list[int], presentation: bool) -> dict:
    attrs = res.attrs
    return {
        "id": res.row_id(row),
        "type": res.name,
        "attributes": {attrs[i].name: _render(row[i], presentation) for i in columns},
        "meta": {"row": {attrs[i].name: {"units": attrs[i].units}
                         for i in columns if attrs[i].units}},
    }


def _link(base: str, res: Resource, params: Sequence[tuple[str, str]], offset: int,
          limit: int) -> str:
    kept = [(k, v) for k, v in params if not k.startswith("page[")]
    query = urlencode([*kept, ("page[offset]", str(offset)), ("page[limit]", str(limit))],
                      safe="[],:")
    return f"{base}/{res.name}?{query}"


def _links(base: str, res: Resource, params: Sequence[tuple[str, str]], q: Query,
           total: int) -> dict[str, str | None]:
    last = max(0, (total - 1) // q.limit * q.limit)
    return {
        "self": _link(base, res, params, q.offset, q.limit),
        "first": _link(base, res, params, 0, q.limit),
        "prev": _link(base, res, params, max(0, q.offset - q.limit), q.limit)
        if q.offset > 0 else None,
        "next": _link(base, res, params, q.offset + q.limit, q.limit)
        if q.offset + q.limit < total else None,
        "last": _link(base, res, params, last, q.limit),
    }


def meta_body(res: Resource) -> dict[str, Any]:
    """`GET /{resource}/meta`: the field catalogue omsapi reads at query creation."""
    return {"meta": {"fields": res.catalogue, "fields_order": [a.name for a in res.attrs]}}


def query_response(state: EmulatorState, resource: str, params: list[tuple[str, str]],
                   base: str, now: datetime) -> tuple[int, dict]:
    """Run one collection query; shared by the HTTP route and the DIALS twin's oms-proxy.

    `params` are decoded (key, value) pairs such as ("filter[run_number][GE]", "379412");
    `base` is the absolute `.../agg/api/v1` used in `links`.
    """
    res = RESOURCES.get(resource.strip("/"))
    if res is None:
        return 404, QueryError(404, f"Resource '{resource}' not found").body()
    try:
        q = parse_query(res, params)
    except QueryError as exc:
        return exc.status, exc.body()
    rows = select(res, state.world, now, q)
    columns = q.fields if q.fields is not None else list(range(len(res.attrs)))
    presentation = "presentation_timestamp" in q.include
    page = rows[q.offset:q.offset + q.limit]
    body: dict[str, Any] = {
        "data": [_resource_object(res, row, columns, presentation) for row in page]}
    if "data_only" in q.include or "dataonly" in q.include:
        return 200, body
    body["links"] = _links(base, res, params, q, len(rows))
    body["meta"] = {"totalResourceCount": len(rows)}
    if "meta" in q.include:
        body["meta"].update(meta_body(res)["meta"])
    return 200, body


def object_response(state: EmulatorState, resource: str, object_id: str, base: str,
                    now: datetime) -> tuple[int, dict]:
    """`GET /{resource}/{id}`: one resource object, `data` an object (§1, optional)."""
    res = RESOURCES.get(resource)
    if res is None:
        return 404, QueryError(404, f"Resource '{resource}' not found").body()
    status, body = query_response(state, resource, res.id_filters(object_id), base, now)
    if status != 200 or not body["data"]:
        return 404, QueryError(404, f"No {resource} object with id '{object_id}'").body()
    return 200, {"data": body["data"][0], "links": {"self": f"{base}/{resource}/{object_id}"}}


# --------------------------------------------------------------------------- HTTP


def _authorized(state: EmulatorState, request: Request) -> bool:
    token = bearer_token(request)
    if not token:
        return False
    try:
        state.signer.verify(token, OMS_AUDIENCE)
    except TokenError:
        return False
    return True


def _unauthorized() -> Response:
    """Not JSON on purpose: clients detect an expired token by the 401 (§5)."""
    return Response(UNAUTHORIZED, 401, media_type="text/html",
                    headers={"WWW-Authenticate": 'Bearer realm="cmsoms"'})


def routes(state: EmulatorState) -> list[BaseRoute]:
    def endpoint(request: Request) -> Response:
        if not _authorized(state, request):
            return _unauthorized()
        parts = [p for p in request.path_params["path"].split("/") if p]
        now = state.now_for(request.headers)
        base = base_url(request) + PREFIX
        if len(parts) == 1:
            params = list(request.query_params.multi_items())
            status, body = query_response(state, parts[0], params, base, now)
        elif len(parts) == 2 and parts[1] == "meta" and parts[0] in RESOURCES:
            status, body = 200, meta_body(RESOURCES[parts[0]])
        elif len(parts) == 2:
            status, body = object_response(state, parts[0], parts[1], base, now)
        else:
            status, body = 404, QueryError(404, f"No endpoint {request.url.path}").body()
        return json_response(body, status)

    return [Route(PREFIX + "/{path:path}", endpoint, methods=["GET"])]
