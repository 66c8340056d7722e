"""The one exception tree; every message is one line that says what to do.

    DialsflowError                 anything dialsflow reports to people (CLI exit 2, task failure)
    ├── InputError                 a flag, file, pattern or jobs-file field is unusable
    │   └── ConnectionConfigError  an Airflow connection is missing or malformed
    ├── ServiceError               a service refused, or transient errors outlasted the retries
    ├── UnitFailed                 runs of a dataset × ME could not be ingested
    ├── ConditionsFailed           per-LS OMS conditions of some runs could not be written
    └── CompletenessFailed         a job's night is incomplete beyond what it tolerates
"""

from __future__ import annotations

from collections.abc import Sequence


class DialsflowError(Exception):
    """A user-facing failure: bad input, unreachable service, refused credentials."""


class InputError(DialsflowError):
    """A flag, file or pattern the user gave is unusable."""


class ConnectionConfigError(InputError, ValueError):
    """A connection is missing or malformed; the message says which field and how to fix it."""


class ServiceError(DialsflowError):
    """A service answered with a permanent error, or transient errors outlasted the budget."""


class UnitFailed(DialsflowError):
    """Some runs of a dataset × ME could not be ingested; the message names each one."""


class ConditionsFailed(DialsflowError):
    """The per-LS OMS conditions of some runs could not be written; the message names them."""


class CertificationFailed(DialsflowError):
    """The LS-level certification of some jobs could not be refreshed; the message says why."""


class CompletenessFailed(DialsflowError):
    """Our output lacks lumisections DIALS has, upstream gaps exceed tolerance, or units failed."""


def first_causes(causes: Sequence[str], n: int = 3, *, rest: str = "") -> str:
    """The first `n` causes joined for a one-line message, then how many more (and where
    they are, `rest`): a night's hundred failed runs stay one readable line."""
    more = len(causes) - n
    tail = f" (and {more} more{', ' + rest if rest else ''})" if more > 0 else ""
    return "; ".join(causes[:n]) + tail
