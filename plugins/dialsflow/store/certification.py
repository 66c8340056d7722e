"""Certification kept with the data: the CAF JSONs as served and the per-LS table.

    OUTDIR/_certification/files/<name>            the exact bytes CAF served
    OUTDIR/_certification/files/<name>.meta.json  {"url", "last_modified", "fetched_at",
                                                   "kind", "sha256"}
    OUTDIR/_certification/lumis.parquet           run_number, ls_number, golden, dcs,
                                                   golden_file, dcs_file

Kept files are never deleted: a superseded release stays, as the maps' manifest entries and
footers may name it. Which files the table was built from is in the table's footer
(`dialsflow.certification_files`: kind → names). Everything is published atomically.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from pathlib import Path

import orjson
import pyarrow as pa
import pyarrow.parquet as pq

from dialsflow.errors import InputError
from dialsflow.store import atomic
from dialsflow.store.layout import certification_file, certification_table

SCHEMA = pa.schema([
    pa.field("run_number", pa.int64()), pa.field("ls_number", pa.int64()),
    pa.field("golden", pa.bool_()), pa.field("dcs", pa.bool_()),
    pa.field("golden_file", pa.string()), pa.field("dcs_file", pa.string()),
])
FILES_KEY = "dialsflow.certification_files"
SORTING = [pq.SortingColumn(0), pq.SortingColumn(1)]


def meta_path(outdir: Path, name: str) -> Path:
    path = certification_file(outdir, name)
    return path.with_name(path.name + ".meta.json")


def kept_meta(outdir: Path, name: str) -> dict[str, str] | None:
    """The meta document of a kept file; None when the file or its meta is missing."""
    if not certification_file(outdir, name).is_file():
        return None
    try:
        return orjson.loads(meta_path(outdir, name).read_bytes())
    except (FileNotFoundError, orjson.JSONDecodeError):
        return None


def keep(outdir: Path, name: str, body: bytes, *, url: str, last_modified: str, kind: str,
         fetched_at: str) -> bool:
    """Keep a CAF file unless the same bytes are kept already; True when written. The file
    is published before its meta, so a meta always describes the bytes beside it."""
    sha = hashlib.sha256(body).hexdigest()
    old = kept_meta(outdir, name)
    if old is not None and old.get("sha256") == sha:
        return False
    atomic.write_bytes(certification_file(outdir, name), body)
    meta = {"url": url, "last_modified": last_modified, "fetched_at": fetched_at,
            "kind": kind, "sha256": sha}
    atomic.write_bytes(meta_path(outdir, name), orjson.dumps(meta, option=orjson.OPT_INDENT_2))
    return True


def table_from_columns(run: Sequence[int], ls: Sequence[int], golden: Sequence[bool],
                       dcs: Sequence[bool], golden_file: Sequence[str | None],
                       dcs_file: Sequence[str | None],
                       files: Mapping[str, Sequence[str]]) -> pa.Table:
    """The per-LS table (rows already sorted) with the files in force in its footer."""
    columns = [pa.array(c, type=f.type) for c, f in
               zip((run, ls, golden, dcs, golden_file, dcs_file), SCHEMA, strict=True)]
    meta = {FILES_KEY: orjson.dumps({k: list(v) for k, v in files.items()}).decode()}
    return pa.Table.from_arrays(columns, schema=SCHEMA.with_metadata(meta))


def write_table(outdir: Path, table: pa.Table) -> Path:
    target = certification_table(outdir)
    with atomic.publishing(target) as tmp:
        pq.write_table(table, tmp, compression="zstd", sorting_columns=SORTING)
    return target


def read_table(outdir: Path, columns: list[str] | None = None) -> pa.Table | None:
    """The per-LS table, or None when OUTDIR has none yet."""
    path = certification_table(outdir)
    try:
        return pq.read_table(path, columns=columns)
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        raise InputError(f"{path} is not readable ({exc}); run dialsflow certification -o "
                         f"{outdir} to rewrite it") from None


def files_in_force(table: pa.Table) -> dict[str, list[str]]:
    raw = (table.schema.metadata or {}).get(FILES_KEY.encode())
    return orjson.loads(raw) if raw else {}
