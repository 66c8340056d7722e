"""The jobs file: which ingestion jobs the nightly DAG runs, validated when a run starts.

One JSON file (env `DIALSFLOW_JOBS_FILE`, default `<project>/include/jsons/jobs.json`)::

    {"jobs": [
      {"name": "tracker_zerobias",                  # [A-Za-z0-9_-], unique
       "description": "free text (optional)",
       "workspace": "tracker",                      # DIALS workspace
       "datasets_file": "datasets_zerobias_2024c.json",  # seed-style lists, relative to
       "mes_file": "mes_digioccupancy.json",             # the jobs file's folder
       "me_type": "auto",                           # optional: auto (default) | h1d | h2d
       "output": "tracker",                         # relative → $DIALSFLOW_OUTPUT_ROOT/tracker
       "certification": {"class": "Collisions24", "kind": "golden"},  # optional, each key
       "oms": {"stable_beam": true, "min_recorded_lumi": 0.1,         # optional, each key
               "components": ["PIXEL", "TRACKER"]},
       "lookback_days": 10,                         # int >= 0
       "completeness_tolerance": 0.1}               # float in [0, 1]
    ]}

Output roots: an absolute path is used as is; a relative one resolves against the env
`DIALSFLOW_OUTPUT_ROOT`, default `<project>/out` (git-ignored), so one file works on a laptop
and on a node with EOS mounted. Only local paths for now (S3/EOS URLs are refused clearly).

Certification: `class`/`kind` given here override the `caf_default` connection's extra;
left out, the connection's apply (see `Job.caf_settings`). OMS filters default to "no
filter" (stable_beam false = not required, min_recorded_lumi 0, no components).

Every error is an `InputError` of one line naming the file, the job and the field.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from dialsflow.config.connections import CERT_KINDS, CafSettings
from dialsflow.config.inputs import load_patterns, read_json
from dialsflow.errors import InputError

PROJECT_ROOT = Path(__file__).resolve().parents[3]
DEFAULT_JOBS_FILE = PROJECT_ROOT / "include" / "jsons" / "jobs.json"
DEFAULT_OUTPUT_ROOT = PROJECT_ROOT / "out"
JOBS_FILE_ENV = "DIALSFLOW_JOBS_FILE"
OUTPUT_ROOT_ENV = "DIALSFLOW_OUTPUT_ROOT"
ME_TYPES = ("auto", "h1d", "h2d")

_NAME = re.compile(r"[A-Za-z0-9_-]{1,100}")
_CLASS = re.compile(r"[A-Za-z0-9_.-]{1,100}")  # one path component of the CAF area
_WORKSPACE = re.compile(r"[A-Za-z0-9_-]{1,100}")

_JOB_KEYS = {"name", "description", "workspace", "datasets_file", "mes_file", "me_type",
             "output", "certification", "oms", "lookback_days", "completeness_tolerance"}
_REQUIRED = ("name", "workspace", "datasets_file", "mes_file", "output", "lookback_days",
             "completeness_tolerance")
_CERT_KEYS = {"class", "kind"}
_OMS_KEYS = {"stable_beam", "min_recorded_lumi", "components"}


@dataclass(frozen=True)
class Certification:
    """Which CAF JSON certifies runs; None = take it from the `caf_default` connection."""

    cert_class: str | None = None
    kind: str | None = None  # golden | muon | dcs


@dataclass(frozen=True)
class OmsFilters:
    """Run-level OMS requirements; the defaults filter nothing."""

    stable_beam: bool = False  # True: the run must have had stable beams
    min_recorded_lumi: float = 0.0  # pb^-1, OMS `recorded_lumi` of the run
    components: tuple[str, ...] = ()  # every one must be in OMS `components`


@dataclass(frozen=True)
class Job:
    name: str
    workspace: str
    datasets_file: Path
    mes_file: Path
    dataset_patterns: tuple[str, ...]
    me_patterns: tuple[str, ...]
    me_type: str
    output: Path
    certification: Certification
    oms: OmsFilters
    lookback_days: int
    completeness_tolerance: float
    description: str = ""

    @property
    def output_uri(self) -> str:
        """The output root as a URI (for Airflow assets)."""
        return self.output.as_uri()

    def caf_settings(self, base: CafSettings | None) -> CafSettings:
        """The connection's CAF settings with this job's class/kind laid over them."""
        from dialsflow.services.caf import PRODUCTION_CAF

        cert = self.certification
        if base is None:
            if cert.cert_class is None:
                raise InputError(f"job {self.name!r}: no caf_default connection and no "
                                 "certification.class in the jobs file: set one of them")
            base = CafSettings(PRODUCTION_CAF, cert.cert_class, cert.kind or "golden", True)
        return replace(base, cert_class=cert.cert_class or base.cert_class,
                       kind=cert.kind or base.kind)


def jobs_file_path(path: str | Path | None = None) -> Path:
    """The jobs file in use: the argument, else `$DIALSFLOW_JOBS_FILE`, else the default."""
    if path is not None:
        return Path(path)
    env = os.environ.get(JOBS_FILE_ENV)
    return Path(env) if env else DEFAULT_JOBS_FILE


def output_root() -> Path:
    env = os.environ.get(OUTPUT_ROOT_ENV)
    return Path(env).expanduser() if env else DEFAULT_OUTPUT_ROOT


def load_jobs(path: str | Path | None = None) -> dict[str, Job]:
    """Every job of the jobs file, by name, in file order; the pattern lists are loaded too."""
    p = jobs_file_path(path)
    data = read_json(p, "jobs", f" (set {JOBS_FILE_ENV})")
    if not isinstance(data, dict) or set(data) != {"jobs"} or not isinstance(data["jobs"], list):
        raise InputError(f"jobs file {p}: expected an object {{\"jobs\": [...]}} and nothing "
                         "else at the top level")
    if not data["jobs"]:
        raise InputError(f"jobs file {p}: 'jobs' is empty: define at least one job")
    jobs: dict[str, Job] = {}
    for index, raw in enumerate(data["jobs"]):
        job = _job(p, index, raw)
        if job.name in jobs:
            raise InputError(f"jobs file {p}: job name {job.name!r} is used twice")
        jobs[job.name] = job
    return jobs


def get_job(name: str, path: str | Path | None = None) -> Job:
    jobs = load_jobs(path)
    if name not in jobs:
        raise InputError(f"jobs file {jobs_file_path(path)}: no job {name!r}; known jobs: "
                         f"{', '.join(jobs)}")
    return jobs[name]


def select_jobs(names: list[str] | None, path: str | Path | None = None) -> list[Job]:
    """The named jobs (all when `names` is empty or None), unknown names refused."""
    jobs = load_jobs(path)
    if not names:
        return list(jobs.values())
    unknown = [n for n in names if n not in jobs]
    if unknown:
        raise InputError(f"jobs file {jobs_file_path(path)}: no job "
                         f"{', '.join(map(repr, unknown))}; known jobs: {', '.join(jobs)}")
    return [jobs[n] for n in dict.fromkeys(names)]


# ---- validation ------------------------------------------------------------------------


class _Where:
    """Formats 'jobs file F, job J, field X: problem' consistently."""

    def __init__(self, path: Path, job: str) -> None:
        self.path = path
        self.job = job

    def error(self, field: str, problem: str) -> InputError:
        return InputError(f"jobs file {self.path}, job {self.job}, {field}: {problem}")


def _job(path: Path, index: int, raw: Any) -> Job:
    label = f"#{index + 1}"
    if isinstance(raw, Mapping) and isinstance(raw.get("name"), str):
        label = repr(raw["name"])
    at = _Where(path, label)
    if not isinstance(raw, Mapping):
        raise at.error("(job)", f"must be an object, not {_type(raw)}")
    _known_keys(at, "(job)", raw, _JOB_KEYS)
    for key in _REQUIRED:
        if key not in raw:
            raise at.error(key, "is required")
    name = _text(at, "name", raw["name"], _NAME, "letters, digits, '_' or '-'")
    workspace = _text(at, "workspace", raw["workspace"], _WORKSPACE, "a DIALS workspace name")
    description = raw.get("description", "")
    if not isinstance(description, str):
        raise at.error("description", f"must be a string, not {_type(description)}")
    me_type = raw.get("me_type", "auto")
    if me_type not in ME_TYPES:
        raise at.error("me_type", f"must be one of {', '.join(ME_TYPES)}, not {me_type!r}")
    datasets_file, datasets = _patterns(at, path, "datasets_file", raw["datasets_file"],
                                        "datasets")
    mes_file, mes = _patterns(at, path, "mes_file", raw["mes_file"], "MEs")
    return Job(
        name=name, workspace=workspace, datasets_file=datasets_file, mes_file=mes_file,
        dataset_patterns=tuple(datasets), me_patterns=tuple(mes), me_type=me_type,
        output=_output(at, raw["output"]), certification=_certification(at, raw),
        oms=_oms(at, raw), lookback_days=_lookback(at, raw["lookback_days"]),
        completeness_tolerance=_tolerance(at, raw["completeness_tolerance"]),
        description=description,
    )


def _type(value: Any) -> str:
    return {dict: "an object", list: "a list", str: "a string", bool: "a boolean",
            int: "an integer", float: "a number", type(None): "null"}.get(type(value),
                                                                           type(value).__name__)


def _known_keys(at: _Where, field: str, raw: Mapping, allowed: set[str]) -> None:
    unknown = sorted(set(raw) - allowed)
    if unknown:
        raise at.error(field, f"unknown key {', '.join(map(repr, unknown))}; allowed: "
                       f"{', '.join(sorted(allowed))}")


def _text(at: _Where, field: str, value: Any, pattern: re.Pattern[str], what: str) -> str:
    if not isinstance(value, str):
        raise at.error(field, f"must be a string, not {_type(value)}")
    if not pattern.fullmatch(value):
        raise at.error(field, f"{value!r} is not {what}")
    return value


def _patterns(at: _Where, jobs_path: Path, field: str, value: Any,
              what: str) -> tuple[Path, list[str]]:
    if not isinstance(value, str) or not value.strip():
        raise at.error(field, f"must be a file name (string), not {_type(value)}")
    try:
        file = Path(value).expanduser()
        if not file.is_absolute():
            file = jobs_path.parent / file
        return file.resolve(), load_patterns(file, what)
    except InputError as exc:
        raise at.error(field, str(exc)) from None
    except (ValueError, RuntimeError) as exc:  # a NUL byte; ~user that does not exist
        raise at.error(field, f"{value!r} is not a usable path: {exc}") from None


def _output(at: _Where, value: Any) -> Path:
    if not isinstance(value, str) or not value.strip():
        raise at.error("output", f"must be a path (string), not {_type(value)}")
    if "://" in value:
        raise at.error("output", f"{value!r}: only local paths are supported so far "
                       "(mount EOS, or use a path)")
    try:
        p = Path(value).expanduser()
        return (p if p.is_absolute() else output_root() / p).resolve()
    except (ValueError, RuntimeError) as exc:  # a NUL byte; ~user that does not exist
        raise at.error("output", f"{value!r} is not a usable path: {exc}") from None


def _certification(at: _Where, raw: Mapping) -> Certification:
    value = raw.get("certification", {})
    if not isinstance(value, Mapping):
        raise at.error("certification", f"must be an object, not {_type(value)}")
    _known_keys(at, "certification", value, _CERT_KEYS)
    cert_class = value.get("class")
    if cert_class is not None:
        cert_class = _text(at, "certification.class", cert_class, _CLASS,
                           "a CAF class such as 'Collisions24'")
    kind = value.get("kind")
    if kind is not None and kind not in CERT_KINDS:
        raise at.error("certification.kind", f"must be one of {', '.join(CERT_KINDS)}, not "
                       f"{kind!r}")
    return Certification(cert_class, kind)


def _oms(at: _Where, raw: Mapping) -> OmsFilters:
    value = raw.get("oms", {})
    if not isinstance(value, Mapping):
        raise at.error("oms", f"must be an object, not {_type(value)}")
    _known_keys(at, "oms", value, _OMS_KEYS)
    stable = value.get("stable_beam", False)
    if not isinstance(stable, bool):
        raise at.error("oms.stable_beam", f"must be true or false, not {_type(stable)}")
    lumi = value.get("min_recorded_lumi", 0.0)
    if isinstance(lumi, bool) or not isinstance(lumi, int | float) or not math.isfinite(lumi) \
            or lumi < 0:
        raise at.error("oms.min_recorded_lumi", f"must be a number >= 0 (pb^-1), not {lumi!r}")
    components = value.get("components", [])
    if not isinstance(components, list) or not all(
            isinstance(c, str) and c.strip() for c in components):
        raise at.error("oms.components", "must be a list of OMS component names such as "
                       '["PIXEL", "TRACKER"]')
    return OmsFilters(stable, float(lumi), tuple(dict.fromkeys(components)))


def _lookback(at: _Where, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise at.error("lookback_days", f"must be an integer >= 0, not {value!r}")
    return value


def _tolerance(at: _Where, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value <= 1:
        raise at.error("completeness_tolerance", f"must be a number in [0, 1], not {value!r}")
    return float(value)
