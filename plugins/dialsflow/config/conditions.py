"""Which per-LS OMS conditions a job keeps beside its maps (the jobs file's `conditions`).

Every table has the OMS `lumisections` columns; the spec adds per-LS rates of HLT path
patterns (resolved per run over `hltpathinfo`, `HLT_ZeroBias_v*` matches every version) and
of primary datasets (`datasetrates`). Each pattern or dataset names its columns by
`column_key`: a trailing `_v*` dropped, every character outside [A-Za-z0-9_] made `_`
(`HLT_ZeroBias_v*` → `hlt_rate_HLT_ZeroBias`, `ZeroBias` → `dataset_rate_ZeroBias`), so two
entries that would share a column are refused. The defaults fit ZeroBias jobs.
"""

from __future__ import annotations

import re
from typing import Annotated, Any

from pydantic import AfterValidator, ConfigDict, Field
from pydantic import dataclasses as pydantic_dataclasses
from pydantic_core import PydanticCustomError

from dialsflow.errors import InputError

DEFAULT_HLT_PATHS = ("HLT_ZeroBias_v*",)
DEFAULT_DATASETS = ("ZeroBias",)
#: HLT path names are [A-Za-z0-9_]; patterns add fnmatch's * ? [ ] !.
HLT_PATTERN = r"^[A-Za-z0-9_*?\[\]!]{1,200}$"
DATASET_NAME = r"^[A-Za-z0-9_-]{1,100}$"

_STRICT = ConfigDict(strict=True, extra="forbid")


def column_key(name: str) -> str:
    """The N of `hlt_rate_<N>`, `hlt_path_<N>` and `dataset_rate_<N>`."""
    return re.sub(r"[^A-Za-z0-9_]", "_", re.sub(r"_v\*$", "", name))


def _distinct_columns(names: tuple[str, ...]) -> tuple[str, ...]:
    seen: dict[str, str] = {}
    for name in names:
        key = column_key(name)
        if key in seen:
            problem = (f"{name!r} is listed twice" if seen[key] == name
                       else f"{seen[key]!r} and {name!r} would both be column {key!r}")
            raise PydanticCustomError("dialsflow", "{problem}", {"problem": problem})
        seen[key] = name
    return names


@pydantic_dataclasses.dataclass(frozen=True, config=_STRICT)
class ConditionsSpec:
    """The jobs file's `conditions`; `enabled` false writes no conditions for the job."""

    hlt_paths: Annotated[tuple[Annotated[str, Field(pattern=HLT_PATTERN)], ...],
                         AfterValidator(_distinct_columns)] = DEFAULT_HLT_PATHS
    datasets: Annotated[tuple[Annotated[str, Field(pattern=DATASET_NAME)], ...],
                        AfterValidator(_distinct_columns)] = DEFAULT_DATASETS
    enabled: bool = True

    def to_json(self) -> dict[str, Any]:
        """What the table's footer and manifest entry record (`enabled` is not the table's)."""
        return {"hlt_paths": list(self.hlt_paths), "datasets": list(self.datasets)}


def spec_of(hlt_paths: list[str] | None, datasets: list[str] | None) -> ConditionsSpec:
    """A spec from command-line lists (None = the default); one-line InputError if bad."""
    for value in hlt_paths or ():
        if not re.fullmatch(HLT_PATTERN, value):
            raise InputError(f"--hlt-path {value!r}: not an HLT path name or fnmatch pattern "
                             "such as HLT_ZeroBias_v*")
    for value in datasets or ():
        if not re.fullmatch(DATASET_NAME, value):
            raise InputError(f"--dataset {value!r}: not a primary dataset name such as "
                             "ZeroBias")
    for option, values in (("--hlt-path", hlt_paths), ("--dataset", datasets)):
        try:
            _distinct_columns(tuple(values or ()))
        except PydanticCustomError as exc:
            raise InputError(f"{option}: {exc.message()}") from None
    return ConditionsSpec(
        hlt_paths=DEFAULT_HLT_PATHS if hlt_paths is None else tuple(hlt_paths),
        datasets=DEFAULT_DATASETS if datasets is None else tuple(datasets))
