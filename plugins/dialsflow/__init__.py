"""dialsflow: per-lumisection DQM monitoring elements from DIALS to parquet.

The small public face: `dialsflow.fetch(...)` (what `dialsflow fetch` runs), the reader
`dialsflow.read(...)` / `dialsflow.read_many(...)` and the one exception tree. Importing the
package stays cheap: each loads its machinery on first use.
"""

from __future__ import annotations

from typing import Any

from dialsflow.errors import DialsflowError, InputError, ServiceError

__version__ = "0.1.0"
__all__ = ["DialsflowError", "InputError", "ServiceError", "__version__", "fetch", "read",
           "read_many"]


def __getattr__(name: str) -> Any:
    if name == "fetch":
        from dialsflow.pipeline.ingest import fetch

        return fetch
    if name in ("read", "read_many"):
        from dialsflow import reader

        return getattr(reader, name)
    raise AttributeError(f"module 'dialsflow' has no attribute {name!r}")
