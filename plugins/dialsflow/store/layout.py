"""Every path under an output root, in one place.

    OUTDIR/<workspace>/<dataset>/<ME>/run_<run>.parquet    data (one file per run)
    OUTDIR/_manifest/<workspace>/<dataset>/<ME>/run_<run>.json    what was written (manifest)
    OUTDIR/_locks/<workspace>/<dataset>/<ME>.lock          one writer per unit (locks)
    OUTDIR/_reports/<DAG run id>.json                      nightly completeness reports
    OUTDIR/_conditions/oms/run_<run>.parquet               per-LS OMS conditions of a run
    OUTDIR/_manifest/_conditions/oms/run_<run>.json        what was written of them
    OUTDIR/_certification/files/<CAF file name>            the CAF JSONs used, as served
    OUTDIR/_certification/files/<CAF file name>.meta.json  where and when each was fetched
    OUTDIR/_certification/lumis.parquet                    per-LS golden/dcs flags
    EXPORT_DIR/<dialstools name>.parquet                   exports (`dialstools_name`)

Dataset and ME names contain `/`, `+`, spaces and brackets, so each becomes one path
component by percent-encoding every byte outside [A-Za-z0-9_-]. The encoding is reversible
(`decode_name`) and collision-free ('%' itself is encoded), and no component can be '.', '..',
empty or contain '/' or NUL, so no name ever writes outside OUTDIR. Files whose name starts
with '.' or '_' are ignored by pyarrow/pandas dataset readers: temporary files are '.…tmp'
and the manifest lives in OUTDIR/_manifest.
"""

from __future__ import annotations

import os
import re
import tempfile
from dataclasses import dataclass
from pathlib import Path

from dialsflow.errors import InputError

_SAFE = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-")
_ENCODED = re.compile(r"(?:[A-Za-z0-9_-]|%[0-9A-F]{2})+")
MAX_COMPONENT = 240  # bytes; most filesystems allow 255
RUN_FILE = re.compile(r"run_(\d+)\.parquet")
MANIFEST_DIR = "_manifest"
LOCKS_DIR = "_locks"
REPORTS_DIR = "_reports"
CONDITIONS_DIR = "_conditions"
CERTIFICATION_DIR = "_certification"


class UnsafeNameError(ValueError):
    """A name that cannot be stored (empty, or too long once encoded)."""


def encode_name(name: str) -> str:
    """One filesystem-safe path component for any non-empty name."""
    if not name:
        raise UnsafeNameError("empty name")
    out = "".join(chr(b) if b in _SAFE else f"%{b:02X}" for b in name.encode("utf-8"))
    if len(out) > MAX_COMPONENT:
        raise UnsafeNameError(f"name too long to store ({len(out)} bytes encoded): {name[:60]}…")
    return out


def decode_name(component: str) -> str:
    """Inverse of `encode_name`; refuses anything `encode_name` cannot produce."""
    if not _ENCODED.fullmatch(component):
        raise UnsafeNameError(f"not an encoded name: {component!r}")
    out = bytearray()
    i = 0
    while i < len(component):
        if component[i] == "%":
            out.append(int(component[i + 1:i + 3], 16))
            i += 3
        else:
            out.append(ord(component[i]))
            i += 1
    return out.decode("utf-8")


@dataclass(frozen=True, order=True)
class UnitKey:
    """One unit of work: a concrete dataset × ME in a workspace."""

    workspace: str
    dataset: str
    me: str

    def __str__(self) -> str:
        return f"{self.dataset} × {self.me}"


def _unit_parts(key: UnitKey) -> tuple[str, str, str]:
    return encode_name(key.workspace), encode_name(key.dataset), encode_name(key.me)


def unit_dir(outdir: str | Path, key: UnitKey) -> Path:
    return Path(outdir).joinpath(*_unit_parts(key))


def run_file(outdir: str | Path, key: UnitKey, run: int) -> Path:
    return unit_dir(outdir, key) / f"run_{int(run)}.parquet"


def manifest_dir(outdir: str | Path, key: UnitKey) -> Path:
    return Path(outdir, MANIFEST_DIR).joinpath(*_unit_parts(key))


def manifest_file(outdir: str | Path, key: UnitKey, run: int) -> Path:
    return manifest_dir(outdir, key) / f"run_{int(run)}.json"


def lock_file(outdir: str | Path, key: UnitKey) -> Path:
    workspace, dataset, me = _unit_parts(key)
    return Path(outdir, LOCKS_DIR, workspace, dataset, f"{me}.lock")


def safe_run_id(run_id: str) -> str:
    """Run ids hold ':' and '+'; keep file names portable."""
    return "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in run_id)


def report_file(outdir: str | Path, run_id: str) -> Path:
    return Path(outdir, REPORTS_DIR, f"{safe_run_id(run_id)}.json")


def conditions_dir(outdir: str | Path, source: str = "oms") -> Path:
    return Path(outdir, CONDITIONS_DIR, source)


def conditions_file(outdir: str | Path, run: int, source: str = "oms") -> Path:
    """One run's per-LS conditions table."""
    return conditions_dir(outdir, source) / f"run_{int(run)}.parquet"


def conditions_manifest_file(outdir: str | Path, run: int, source: str = "oms") -> Path:
    """The manifest entry of one run's conditions table."""
    return Path(outdir, MANIFEST_DIR, CONDITIONS_DIR, source, f"run_{int(run)}.json")


def conditions_runs(outdir: str | Path, source: str = "oms") -> list[int]:
    """Runs with a conditions table on disk, ascending."""
    folder = conditions_dir(outdir, source)
    if not folder.is_dir():
        return []
    return sorted(int(m[1]) for f in folder.iterdir() if (m := RUN_FILE.fullmatch(f.name)))


def certification_dir(outdir: str | Path) -> Path:
    return Path(outdir, CERTIFICATION_DIR)


def certification_file(outdir: str | Path, name: str) -> Path:
    """A CAF JSON kept as served; `name` is its file name in the CAF area."""
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.+-]{0,200}", name):
        raise UnsafeNameError(f"not a CAF file name: {name!r}")
    return certification_dir(outdir) / "files" / name


def certification_table(outdir: str | Path) -> Path:
    """Per-LS golden/dcs flags of every run under OUTDIR."""
    return certification_dir(outdir) / "lumis.parquet"


def dialstools_name(dataset: str, me: str) -> str:
    """The file name the seed scripts (and pixelae's loaders) give one dataset × ME:
    `(dataset + '-' + me).strip('/').replace('/', '-') + '.parquet'`."""
    name = (dataset + "-" + me).strip("/").replace("/", "-") + ".parquet"
    if "\0" in name or name.startswith(".") or len(name.encode()) > 255:
        raise UnsafeNameError(f"cannot export {dataset} × {me} under a dialstools name")
    return name


def parquet_runs(outdir: str | Path, key: UnitKey) -> list[int]:
    """Runs with a parquet file on disk for a unit, ascending."""
    folder = unit_dir(outdir, key)
    if not folder.is_dir():
        return []
    return sorted(int(m[1]) for f in folder.iterdir() if (m := RUN_FILE.fullmatch(f.name)))


def ensure_writable(outdir: Path) -> None:
    """Fail before any request if OUTDIR cannot take files."""
    try:
        outdir.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(prefix=".probe-", suffix=".tmp", dir=outdir)
        os.close(fd)
        os.unlink(probe)
    except FileExistsError:
        raise InputError(f"output path {outdir} exists and is not a directory") from None
    except OSError as exc:
        raise InputError(f"output directory {outdir} is not writable: "
                         f"{exc.strerror or exc}") from None


def units_on_disk(outdir: Path) -> list[UnitKey]:
    """Every dataset × ME directory under OUTDIR that holds at least one run file."""
    found = []
    for ws in sorted(p for p in outdir.iterdir() if p.is_dir() and _ENCODED.fullmatch(p.name)):
        for ds in sorted(p for p in ws.iterdir() if p.is_dir() and _ENCODED.fullmatch(p.name)):
            for me in sorted(p for p in ds.iterdir() if p.is_dir() and _ENCODED.fullmatch(p.name)):
                if any(RUN_FILE.fullmatch(f.name) for f in me.iterdir()):
                    found.append(UnitKey(decode_name(ws.name), decode_name(ds.name),
                                         decode_name(me.name)))
    return found
