"""Time in one convention: aware UTC datetimes inside, one ISO text form outside.

OMS filters, manifest entries, reports and XCom payloads all carry instants as
`YYYY-MM-DDTHH:MM:SSZ` (OMS' own form, docs/reference/oms.md §3; no '+', which omsapi
would not URL-encode in a query).
"""

from __future__ import annotations

from datetime import UTC, datetime

ISO_FORMAT = "%Y-%m-%dT%H:%M:%SZ"


def utc(value: datetime | str) -> datetime:
    """Aware UTC from a datetime or ISO text; naive values are taken as UTC (as OMS does)."""
    dt = datetime.fromisoformat(value.replace(" ", "T")) if isinstance(value, str) else value
    return dt.replace(tzinfo=UTC) if dt.tzinfo is None else dt.astimezone(UTC)


def iso(value: datetime) -> str:
    """The one text form of an instant."""
    return utc(value).strftime(ISO_FORMAT)


def now_iso() -> str:
    return iso(datetime.now(UTC))
