"""Per-LS OMS conditions of a run as parquet (OUTDIR/_conditions/oms/run_<run>.parquet), and
its manifest entry (OUTDIR/_manifest/_conditions/oms/run_<run>.json).

One row per LS OMS has, sorted by ls_number (declared in `sorting_columns`); LS OMS lacks are
absent and OMS nulls stay null. Columns, in this order: `BASE` (luminosities in pb^-1), every
`<part>_ready` bit OMS `lumisections` gives (OMS' names and order), then per HLT path pattern
`hlt_rate_<N>` (Hz, summed over the versioned paths it matches) and `hlt_path_<N>` (those
paths, comma separated), then per primary dataset `dataset_rate_<N>` (Hz); N is
config/conditions.py `column_key`. Footer keys: `dialsflow.conditions_version` "1",
`dialsflow.version`, `dialsflow.oms_source` (no credentials), `dialsflow.conditions_spec`
(JSON) and `dialsflow.lumi_unit` "pb^-1".

The entry is written after the table (both atomically) and says what the table holds (rows,
LS ranges, bytes, sha256, written_at, spec, source): a table counts as current when its entry
has the same spec and the file has the recorded size (`current`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import orjson
import pyarrow as pa
import pyarrow.parquet as pq

from dialsflow.config.conditions import ConditionsSpec, column_key
from dialsflow.lumis import to_ranges
from dialsflow.store import atomic
from dialsflow.store.layout import conditions_file, conditions_manifest_file
from dialsflow.store.manifest import file_sha256
from dialsflow.store.parquet import public_url
from dialsflow.times import now_iso, utc

CONDITIONS_VERSION = 1
LUMI_UNIT = "pb^-1"
_TIME = pa.timestamp("us", tz="UTC")
#: The columns every table starts with; OMS `lumisections` attribute = column name, except
#: ls_number (`lumisection_number`).
BASE = pa.schema([
    ("run_number", pa.int64()), ("ls_number", pa.int64()), ("fill_number", pa.int64()),
    ("start_time", _TIME), ("end_time", _TIME), ("pileup", pa.float64()),
    ("delivered_lumi_per_lumisection", pa.float64()),
    ("recorded_lumi_per_lumisection", pa.float64()),
    ("physics_flag", pa.bool_()), ("beams_stable", pa.bool_()), ("cms_active", pa.bool_()),
    ("prescale_index", pa.int64()), ("prescale_name", pa.string()),
])
SORTING = ("run_number", "ls_number")  # one run per file: sorted by both


@dataclass(frozen=True)
class Rates:
    """One configured HLT pattern or dataset in one run: its rate per LS (Hz) and, for a
    pattern, the versioned paths it matched (None: none matched, or a dataset)."""

    name: str
    per_ls: Mapping[int, float | None]
    paths: Sequence[str] | None = None


def build_table(run: int, rows: Mapping[int, Mapping[str, Any]], ready_bits: Sequence[str],
                hlt: Sequence[Rates], datasets: Sequence[Rates]) -> pa.Table:
    """The run's table from its `lumisections` rows by LS (lumis already in pb^-1)."""
    lss = sorted(rows)
    ordered = [rows[ls] for ls in lss]
    columns: dict[str, pa.Array] = {}
    for field in BASE:
        if field.name == "run_number":
            values: list[Any] = [run] * len(lss)
        elif field.name == "ls_number":
            values = lss
        else:
            values = [_value(r.get(field.name), field.type) for r in ordered]
        columns[field.name] = pa.array(values, type=field.type)
    for bit in ready_bits:
        columns[bit] = pa.array([_value(r.get(bit), pa.bool_()) for r in ordered], pa.bool_())
    for rates in hlt:
        key = column_key(rates.name)
        columns[f"hlt_rate_{key}"] = _rates(rates, lss)
        named = ",".join(rates.paths) if rates.paths else None
        columns[f"hlt_path_{key}"] = pa.array([named] * len(lss), pa.string())
    for rates in datasets:
        columns[f"dataset_rate_{column_key(rates.name)}"] = _rates(rates, lss)
    return pa.table(columns)


def _rates(rates: Rates, lss: list[int]) -> pa.Array:
    return pa.array([rates.per_ls.get(ls) for ls in lss], pa.float64())


def _value(value: Any, arrow_type: pa.DataType) -> Any:
    """An OMS attribute as the column's type; what does not fit is null, not a failure."""
    if value is None:
        return None
    if pa.types.is_timestamp(arrow_type):
        return utc(value) if isinstance(value, str) else None
    if pa.types.is_boolean(arrow_type):
        return value if isinstance(value, bool) else None
    if pa.types.is_integer(arrow_type):
        return value if isinstance(value, int) and not isinstance(value, bool) else None
    if pa.types.is_floating(arrow_type):
        return float(value) if isinstance(value, int | float) \
            and not isinstance(value, bool) else None
    return value if isinstance(value, str) else None


def footer_metadata(spec: ConditionsSpec, source_url: str) -> dict[str, str]:
    from dialsflow import __version__

    return {"dialsflow.conditions_version": str(CONDITIONS_VERSION),
            "dialsflow.version": __version__, "dialsflow.oms_source": public_url(source_url),
            "dialsflow.conditions_spec": orjson.dumps(spec.to_json()).decode(),
            "dialsflow.lumi_unit": LUMI_UNIT}


@dataclass(frozen=True)
class ConditionsEntry:
    """What was written of one run's conditions (the manifest entry)."""

    run: int
    rows: int
    ls_ranges: list[list[int]]
    bytes: int
    sha256: str
    written_at: str
    spec: dict[str, Any]
    source: str

    @property
    def ls_numbers(self) -> set[int]:
        return {n for first, last in self.ls_ranges for n in range(first, last + 1)}


def publish(outdir: Path, run: int, table: pa.Table, spec: ConditionsSpec,
            source_url: str) -> ConditionsEntry:
    """Write the table, then its entry, each atomically."""
    target = conditions_file(outdir, run)
    table = table.replace_schema_metadata(footer_metadata(spec, source_url))
    with atomic.publishing(target) as tmp:
        pq.write_table(table, tmp, compression="zstd", sorting_columns=[
            pq.SortingColumn(table.schema.get_field_index(c)) for c in SORTING])
    entry = ConditionsEntry(
        run=run, rows=table.num_rows,
        ls_ranges=to_ranges(table.column("ls_number").to_pylist()),
        bytes=target.stat().st_size, sha256=file_sha256(target), written_at=now_iso(),
        spec=spec.to_json(), source=public_url(source_url))
    atomic.write_bytes(conditions_manifest_file(outdir, run),
                       orjson.dumps(asdict(entry), option=orjson.OPT_INDENT_2))
    return entry


def entry(outdir: Path, run: int) -> ConditionsEntry | None:
    try:
        return ConditionsEntry(**orjson.loads(conditions_manifest_file(outdir, run)
                                              .read_bytes()))
    except FileNotFoundError:
        return None


def table_entry(outdir: Path, run: int) -> ConditionsEntry | None:
    """The run's entry when its table is on disk as the entry records it (whatever its
    spec); None when either is missing or they disagree."""
    found = entry(outdir, run)
    try:
        size = conditions_file(outdir, run).stat().st_size
    except FileNotFoundError:
        return None
    return found if found is not None and size == found.bytes else None


def current(outdir: Path, run: int, spec: ConditionsSpec) -> bool:
    """The run's table is there, as its entry records it, written with this spec."""
    found = table_entry(outdir, run)
    return found is not None and found.spec == spec.to_json()
