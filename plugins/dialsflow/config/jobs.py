"""The jobs file: which ingestion jobs the nightly DAG runs, validated when a run starts.

One JSON file, named by the env `DIALSFLOW_JOBS_FILE` (required: there is no default, an
installed package has no project folder to find one in; the demo's is
`include/jsons/jobs.json`, and `make demo`, `make airflow`, the Docker image and the compose
files set the variable)::

    {"jobs": [
      {"name": "tracker_zerobias",                  # [A-Za-z0-9_-], unique
       "description": "free text (optional)",
       "workspace": "tracker",                      # DIALS workspace
       "datasets_file": "datasets_zerobias_2024c.json",  # seed-style lists, relative to
       "mes_file": "mes_digioccupancy.json",             # the jobs file's folder
       "me_type": "auto",                           # optional: auto (default) | h1d | h2d
       "output": "tracker",                         # relative → $DIALSFLOW_OUTPUT_ROOT/tracker
       "certification": {"class": "Collisions24", "kind": "golden",   # optional, each key
                         "energy": "13p6TeV"},      # dcs only: which daily series
       "oms": {"stable_beam": true, "min_recorded_lumi": 0.1,         # optional, each key
               "components": ["PIXEL", "TRACKER"]},
       "conditions": {"hlt_paths": ["HLT_ZeroBias_v*"],  # optional, each key: per-LS OMS
                      "datasets": ["ZeroBias"],     # conditions beside the maps (these are
                      "enabled": true},             # the defaults)
       "export": {"to": "exports/tracker",           # optional: dialstools files of each
                  "format": "dialstools"},         # dataset × ME, refreshed every night
       "stuck_after_hours": 48,                     # optional: DIALS file stuck → ingest
       "max_runs_per_night": 400,                   # optional: runs per unit per night
       "completeness_tolerance": 0.1}               # float in [0, 1]
    ]}

The schema is a pydantic model (`JobsFile`), strict as JSON is: no type coercion (true is
not 1, "7" is not 7), no unknown keys, unique names. The pattern files are read once the
whole file passed the schema.

Output roots: an absolute path is used as is; a relative one resolves against the env
`DIALSFLOW_OUTPUT_ROOT`, so one file works on a laptop and on a node with EOS mounted. With
that variable unset a relative output is an error (set the variable, or make the output
absolute): it never lands silently in some default folder. Only local paths for now (S3/EOS
URLs are refused clearly).

Certification: `class`/`kind` given here override the `caf_default` connection's extra;
left out, the connection's apply (see `Job.caf_settings`). OMS filters default to "no
filter" (stable_beam false = not required, min_recorded_lumi 0, no components).

Conditions: every night the DAG writes, for each run it ingests (and each run with maps
but no table yet), the run's per-LS OMS conditions under OUTDIR/_conditions/oms/
(config/conditions.py, store/conditions.py): the `lumisections` flags, pileup and
luminosities, plus the per-LS rates of `hlt_paths` (fnmatch patterns over the run's HLT
paths) and of primary `datasets`. `enabled: false` writes none for the job.

Exports: with `export`, the `dials_export` DAG rewrites the job's dialstools files
(pipeline/export.py) after each night; `to` resolves like `output`.

There is no time window: a job's runs are the runs its certification holds, whenever they
ended (pipeline/discovery.py). `stuck_after_hours` says when a DIALS file still PENDING or
STARTED stops being waited for (the run is ingested with the gap, reported as stuck
upstream); `max_runs_per_night` bounds one night's work per dataset × ME, oldest runs first
(the rest stay due for the next nights; docs/operations.md sizes it).

Every error is an `InputError` of one line naming the file, the job (by name, or #N when the
job has no usable name) and the field (dotted, e.g. `oms.min_recorded_lumi`).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Annotated, Any, Literal

import orjson
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationError,
    field_validator,
)
from pydantic import dataclasses as pydantic_dataclasses
from pydantic_core import ErrorDetails, PydanticCustomError

from dialsflow.config.conditions import ConditionsSpec
from dialsflow.config.connections import CERT_KINDS, CafSettings
from dialsflow.config.inputs import load_patterns, read_json
from dialsflow.errors import InputError

JOBS_FILE_ENV = "DIALSFLOW_JOBS_FILE"
OUTPUT_ROOT_ENV = "DIALSFLOW_OUTPUT_ROOT"
ME_TYPES = ("auto", "h1d", "h2d")
EXPORT_FORMATS = ("dialstools",)
#: The pp energy of Run 3 as the CAF daily DCS-only file names write it.
DEFAULT_ENERGY = "13p6TeV"
#: DIALS' indexer runs hourly and a file ingests in minutes to hours: two days in PENDING or
#: STARTED is a stuck file (docs/reference/dials.md §2.2).
STUCK_AFTER_HOURS = 48.0
#: Runs per dataset × ME per night; docs/operations.md ("Nightly budget") derives it.
MAX_RUNS_PER_NIGHT = 400

# JSON-strict, closed, and constructible in Python by field name ("cert_class") as well as by
# the file's key ("class"); the file itself is validated by its keys only (see `load_jobs`).
_STRICT = ConfigDict(strict=True, extra="forbid", validate_by_name=True, validate_by_alias=True)

_Name = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_-]{1,100}$")]
_NonBlank = Annotated[str, StringConstraints(pattern=r"\S")]


def _problem(text: str) -> PydanticCustomError:
    """A validation error whose message is the final phrase (see `_phrase`)."""
    return PydanticCustomError("dialsflow", "{problem}", {"problem": text})


def _local_path(value: str) -> str:
    if "://" in value:
        raise _problem(f"{value!r}: only local paths are supported so far (mount EOS, or use a "
                       "path)")
    return value


@pydantic_dataclasses.dataclass(frozen=True, config=_STRICT)
class CertificationChoice:
    """Which CAF JSON certifies runs; None = take it from the `caf_default` connection."""

    # one path component of the CAF area
    cert_class: Annotated[str | None, Field(alias="class",
                                            pattern=r"^[A-Za-z0-9_.-]{1,100}$")] = None
    kind: Literal[CERT_KINDS] | None = None  # golden | muon | dcs
    # dcs: the daily series of this centre-of-mass energy (the folder mixes several)
    energy: Annotated[str, Field(pattern=r"^[A-Za-z0-9]{1,20}$")] = DEFAULT_ENERGY


@pydantic_dataclasses.dataclass(frozen=True, config=_STRICT)
class OmsFilters:
    """Run-level OMS requirements; the defaults filter nothing."""

    stable_beam: bool = False  # True: the run must have had stable beams
    # pb^-1, OMS `recorded_lumi` of the run
    min_recorded_lumi: Annotated[float, Field(ge=0, allow_inf_nan=False)] = 0.0
    # every one must be in OMS `components`
    components: Annotated[tuple[_NonBlank, ...],
                          AfterValidator(lambda c: tuple(dict.fromkeys(c)))] = ()


@pydantic_dataclasses.dataclass(frozen=True, config=_STRICT)
class ExportChoice:
    """Where the job's exports go, in which format; no `export` key = no export."""

    to: Annotated[_NonBlank, AfterValidator(_local_path)]
    format: Literal[EXPORT_FORMATS] = "dialstools"


class JobSpec(BaseModel):
    """One job as the file writes it (paths as given, pattern files not read yet)."""

    model_config = _STRICT | ConfigDict(frozen=True)

    # field order = the order problems are reported in (after unknown and missing keys)
    name: _Name
    workspace: _Name
    description: str = ""
    me_type: Literal[ME_TYPES] = "auto"
    datasets_file: _NonBlank
    mes_file: _NonBlank
    output: Annotated[_NonBlank, AfterValidator(_local_path)]
    certification: CertificationChoice = CertificationChoice()
    oms: OmsFilters = OmsFilters()
    conditions: ConditionsSpec = ConditionsSpec()
    stuck_after_hours: Annotated[float, Field(gt=0, allow_inf_nan=False)] = STUCK_AFTER_HOURS
    max_runs_per_night: Annotated[int, Field(ge=1)] = MAX_RUNS_PER_NIGHT
    export: ExportChoice | None = None
    completeness_tolerance: Annotated[float, Field(ge=0, le=1)]


class JobsFile(BaseModel):
    """The whole file: `{"jobs": [...]}`, at least one job, names unique."""

    model_config = _STRICT | ConfigDict(frozen=True)

    jobs: Annotated[list[JobSpec], Field(min_length=1)]

    @field_validator("jobs")
    @classmethod
    def _unique_names(cls, jobs: list[JobSpec]) -> list[JobSpec]:
        seen: set[str] = set()
        for job in jobs:
            if job.name in seen:
                raise _problem(f"job name {job.name!r} is used twice")
            seen.add(job.name)
        return jobs


@dataclass(frozen=True)
class ExportTarget:
    """A job's export, its folder resolved."""

    to: Path
    format: str


@dataclass(frozen=True)
class Job:
    """A validated job, its pattern lists read and its paths resolved."""

    name: str
    workspace: str
    datasets_file: Path
    mes_file: Path
    dataset_patterns: tuple[str, ...]
    me_patterns: tuple[str, ...]
    me_type: str
    output: Path
    certification: CertificationChoice
    oms: OmsFilters
    completeness_tolerance: float
    description: str = ""
    stuck_after_hours: float = STUCK_AFTER_HOURS
    max_runs_per_night: int = MAX_RUNS_PER_NIGHT
    conditions: ConditionsSpec = field(default_factory=ConditionsSpec)

    export: ExportTarget | None = None  # None: the job is not exported

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
    """The jobs file in use: the argument, else `$DIALSFLOW_JOBS_FILE` (required then)."""
    if path is not None:
        return Path(path)
    env = os.environ.get(JOBS_FILE_ENV)
    if not env:
        raise InputError(f"{JOBS_FILE_ENV} is not set: point it at your jobs file (the demo's "
                         "is include/jsons/jobs.json)")
    return Path(env)


def output_root() -> Path:
    """`$DIALSFLOW_OUTPUT_ROOT`, under which relative job outputs go (required for those)."""
    env = os.environ.get(OUTPUT_ROOT_ENV)
    if not env:
        raise InputError(f"{OUTPUT_ROOT_ENV} is not set: set it to the folder relative outputs "
                         "go under, or make the output absolute")
    return Path(env).expanduser()


def load_jobs(path: str | Path | None = None) -> dict[str, Job]:
    """Every job of the jobs file, by name, in file order; the pattern lists are loaded too."""
    p = jobs_file_path(path)
    data = read_json(p, "jobs", f" (set {JOBS_FILE_ENV})")
    try:  # JSON-mode rules (arrays are tuples, strings paths), by the file's keys only
        spec = JobsFile.model_validate_json(orjson.dumps(data), by_alias=True, by_name=False)
    except ValidationError as exc:
        raise InputError(_message(p, data, exc.errors())) from None
    return {job.name: _job(p, job) for job in spec.jobs}


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


# ---- from the validated file to jobs -----------------------------------------------------


def _job(path: Path, spec: JobSpec) -> Job:
    def error(field: str, problem: str) -> InputError:
        return InputError(f"jobs file {path}, job {spec.name!r}, {field}: {problem}")

    def resolved(field: str, value: str, root: Callable[[], Path]) -> Path:
        try:
            p = Path(value).expanduser()
            return (p if p.is_absolute() else root() / p).resolve()
        except InputError as exc:  # a relative output without an output root
            raise error(field, f"{value!r} is relative but {exc}") from None
        except (ValueError, RuntimeError) as exc:  # a NUL byte; ~user that does not exist
            raise error(field, f"{value!r} is not a usable path: {exc}") from None

    def patterns(field: str, value: str, what: str) -> tuple[Path, tuple[str, ...]]:
        file = resolved(field, value, lambda: path.parent)
        try:
            return file, tuple(load_patterns(file, what))
        except InputError as exc:
            raise error(field, str(exc)) from None

    datasets_file, datasets = patterns("datasets_file", spec.datasets_file, "datasets")
    mes_file, mes = patterns("mes_file", spec.mes_file, "MEs")
    output = resolved("output", spec.output, output_root)
    export = None if spec.export is None else ExportTarget(
        resolved("export.to", spec.export.to, output_root), spec.export.format)
    return Job(
        name=spec.name, workspace=spec.workspace, datasets_file=datasets_file,
        mes_file=mes_file, dataset_patterns=datasets, me_patterns=mes, me_type=spec.me_type,
        output=output, certification=spec.certification, oms=spec.oms,
        completeness_tolerance=spec.completeness_tolerance, description=spec.description,
        stuck_after_hours=spec.stuck_after_hours, max_runs_per_night=spec.max_runs_per_night,
        conditions=spec.conditions,
        export=export,
    )


# ---- pydantic's errors as one line -----------------------------------------------------------

# What a field must be, said as the old hand validators said it; {v} is the value given, {t}
# its JSON type. Fields checked against a name pattern are in _NAMES instead.
_MUST = {
    "(job)": "must be an object, not {t}",
    "description": "must be a string, not {t}",
    "me_type": f"must be one of {', '.join(ME_TYPES)}, not {{v}}",
    "datasets_file": "must be a file name (string), not {t}",
    "mes_file": "must be a file name (string), not {t}",
    "output": "must be a path (string), not {t}",
    "certification": "must be an object, not {t}",
    "certification.kind": f"must be one of {', '.join(CERT_KINDS)}, not {{v}}",
    "oms": "must be an object, not {t}",
    "oms.stable_beam": "must be true or false, not {t}",
    "oms.min_recorded_lumi": "must be a number >= 0 (pb^-1), not {v}",
    "oms.components": 'must be a list of OMS component names such as ["PIXEL", "TRACKER"]',
    "conditions": "must be an object, not {t}",
    "conditions.hlt_paths": "must be a list of HLT path names or fnmatch patterns such as "
                            '["HLT_ZeroBias_v*"]',
    "conditions.datasets": 'must be a list of primary dataset names such as ["ZeroBias"]',
    "conditions.enabled": "must be true or false, not {t}",
    "certification.energy": "must be an energy tag such as '13p6TeV', not {v}",
    "export": "must be an object with the folder 'to' (and 'format'), not {t}",
    "export.to": "must be a folder path (string), not {t}",
    "export.format": f"must be one of {', '.join(EXPORT_FORMATS)}, not {{v}}",
    "stuck_after_hours": "must be a number of hours > 0, not {v}",
    "max_runs_per_night": "must be an integer >= 1, not {v}",
    "completeness_tolerance": "must be a number in [0, 1], not {v}",
}
_NAMES = {"name": "letters, digits, '_' or '-'", "workspace": "a DIALS workspace name",
          "certification.class": "a CAF class such as 'Collisions24'"}
_UNKNOWN = ("extra_forbidden", "unexpected_keyword_argument")
_KEYS = {"(job)": JobSpec, "export": ExportChoice,
         "certification": CertificationChoice, "oms": OmsFilters,
         "conditions": ConditionsSpec}


def _message(path: Path, data: Any, errors: list[ErrorDetails]) -> str:
    """The first problem of the file as one line: the file's shape, then job by job unknown
    keys, missing keys and wrong values, the fields in the order a job is written."""
    def order(e: ErrorDetails) -> tuple[int, int]:
        loc = e["loc"]
        index = loc[1] if len(loc) > 1 and isinstance(loc[1], int) else -1
        return index, 0 if e["type"] in _UNKNOWN else 1 if e["type"] == "missing" else 2

    errors = sorted(errors, key=order)
    first = errors[0]
    loc = first["loc"]
    if order(first)[0] < 0:  # the top level: {"jobs": [...]} with at least one, names unique
        if first["type"] == "dialsflow":
            return f"jobs file {path}: {first['msg']}"
        if first["type"] == "too_short":
            return f"jobs file {path}: 'jobs' is empty: define at least one job"
        return (f"jobs file {path}: expected an object {{\"jobs\": [...]}} and nothing else at "
                "the top level")
    index = loc[1]
    raw = data["jobs"][index]
    label = repr(raw["name"]) if isinstance(raw, Mapping) and isinstance(raw.get("name"),
                                                                         str) else f"#{index + 1}"
    where = [str(part) for part in loc[2:] if not isinstance(part, int)]
    if first["type"] in _UNKNOWN:
        field = ".".join(where[:-1]) or "(job)"
        unknown = sorted({e["loc"][-1] for e in errors if e["type"] in _UNKNOWN
                          and e["loc"][:-1] == loc[:-1]})
        problem = (f"unknown key {', '.join(map(repr, unknown))}; allowed: "
                   f"{', '.join(sorted(_keys(_KEYS[field])))}")
    else:
        field = ".".join(where) or "(job)"
        problem = _phrase(field, first)
    return f"jobs file {path}, job {label}, {field}: {problem}"


def _phrase(field: str, error: ErrorDetails) -> str:
    value = error["input"]
    if error["type"] == "missing":
        return "is required"
    if error["type"] == "dialsflow":
        return error["msg"]
    if field in _NAMES:
        if not isinstance(value, str):
            return f"must be a string, not {_type(value)}"
        return f"{value!r} is not {_NAMES[field]}"
    if field in _MUST:
        return _MUST[field].format(v=repr(value), t=_type(value))
    return error["msg"]  # a field added to the models but not to _MUST yet


def _keys(model: Any) -> list[str]:
    """The keys a model takes in the file (pydantic models and dataclasses alike)."""
    return [info.alias or name for name, info in model.__pydantic_fields__.items()]


def _type(value: Any) -> str:
    if isinstance(value, str) and not value.strip():
        return "a blank string"
    return {dict: "an object", list: "a list", str: "a string", bool: "a boolean",
            int: "an integer", float: "a number", type(None): "null"}.get(type(value),
                                                                           type(value).__name__)
