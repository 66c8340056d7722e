"""OMS queries: runs for discovery (every run since a time, or by number, with the
attributes the job's filters use), and any resource paged the same way (`query`; the per-LS
conditions in services/oms_conditions.py use it).

Two ways in, chosen by `oms_default` extra.via:
- `direct`: the unmodified `omsapi` 0.9.8.1 client against the connection's api_url, with a
  client-credentials token from the connection's token_url/audience. omsapi reads its token
  URL from the module global `omsapi.cern_api_url` at call time (docs/reference/oms.md §1, "Emulator
  hook"), so it is set from the connection before authenticating.
- `dials`: DIALS' `oms-proxy/` with our `DialsClient` (its auth, pool and retries). Only what
  cmsdials' OMSProxyClient sends is sent: `endpoint`, `filter[...]` and `page[...]`. DIALS
  turns every OMS error into its HTML 500 page (docs/reference/dials.md), which cannot be
  told from a permanent failure, so it is not retried: the `direct` way, which retries OMS'
  transient 500s, is the one for nightly runs.

Either way the runs query is `runs` with `filter[start_time][GE]` (docs/reference/oms.md §2,
§3: UTC `YYYY-MM-DDTHH:MM:SSZ`) or `filter[run_number][GE]`/`[LE]`, paged with
`page[offset]`/`page[limit]` until `links.next` is null or a short page (§2, §4.1). Runs
carry no `era` (§6.1). Projections (`fields`), sorting and custom parameters such as
`group[granularity]` go to OMS on the direct way only; the proxy passes filters and
pages. The job's filters are applied client side (pipeline/run_filters.py), so every
rejected run can be reported with its reason.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson
import requests

from dialsflow.config.connections import OmsSettings
from dialsflow.errors import ServiceError
from dialsflow.services import http
from dialsflow.services.dials import DialsClient
from dialsflow.services.http import Client, Outcome, Retrier, RetryPolicy
from dialsflow.times import iso, utc

log = logging.getLogger("dialsflow")

PAGE_LIMIT = 500  # rows per OMS page; OMS' hard limit is 100000 (docs/reference/oms.md §2)
RUN_FIELDS = ("run_number", "fill_number", "start_time", "end_time", "stable_beam",
              "recorded_lumi", "delivered_lumi", "components", "last_lumisection_number")

#: recorded_lumi units seen per row in `meta.row` (docs/reference/oms.md §4.1, §6.1) →
#: factor to pb^-1.
LUMI_UNITS = {"pb^{-1}": 1.0, "nb^{-1}": 1e-3, "{\\mu}b^{-1}": 1e-6, "ub^{-1}": 1e-6,
              "fb^{-1}": 1e3}

_omsapi_lock = threading.Lock()


@dataclass(frozen=True)
class QueryOptions:
    """What only the direct way sends (DIALS' oms-proxy passes filters and pages only)."""

    fields: tuple[str, ...] = ()  # projection; empty = every attribute
    sort: str | None = None
    custom: tuple[tuple[str, str], ...] = ()  # e.g. (("group[granularity]", "lumisection"),)


@dataclass(frozen=True)
class OmsRun:
    """A run as OMS `runs` describes it (docs/reference/oms.md §6.1)."""

    run_number: int
    fill_number: int | None
    start_time: datetime | None
    end_time: datetime | None  # None while the run is ongoing
    stable_beam: bool | None
    recorded_lumi: float | None  # pb^-1 (converted with the row's units when given)
    delivered_lumi: float | None
    components: tuple[str, ...]
    last_lumisection_number: int | None

    @property
    def ended(self) -> bool:
        return self.end_time is not None

    @classmethod
    def from_resource(cls, item: dict[str, Any]) -> OmsRun:
        a = item.get("attributes", {})
        units = ((item.get("meta") or {}).get("row") or {})
        return cls(
            run_number=int(a["run_number"]),
            fill_number=a.get("fill_number"),
            start_time=_instant(a.get("start_time")),
            end_time=_instant(a.get("end_time")),
            stable_beam=a.get("stable_beam"),
            recorded_lumi=lumi_pb(a.get("recorded_lumi"), units.get("recorded_lumi")),
            delivered_lumi=lumi_pb(a.get("delivered_lumi"), units.get("delivered_lumi")),
            components=tuple(a.get("components") or ()),
            last_lumisection_number=a.get("last_lumisection_number"),
        )

    def to_dict(self) -> dict[str, Any]:
        return {"run_number": self.run_number, "fill_number": self.fill_number,
                "start_time": iso(self.start_time) if self.start_time else None,
                "end_time": iso(self.end_time) if self.end_time else None,
                "stable_beam": self.stable_beam, "recorded_lumi": self.recorded_lumi,
                "delivered_lumi": self.delivered_lumi, "components": list(self.components),
                "last_lumisection_number": self.last_lumisection_number}


def _instant(value: str | None) -> datetime | None:
    return utc(value) if value else None


def lumi_pb(value: float | None, units: dict | None) -> float | None:
    if value is None:
        return None
    unit = (units or {}).get("units") or "pb^{-1}"
    factor = LUMI_UNITS.get(unit)
    if factor is None:
        log.warning("OMS lumi unit %r unknown; taken as pb^-1", unit)
        factor = 1.0
    return float(value) * factor


class OmsRuns(Client):
    """Queries shared by both access paths; subclasses fetch one page."""

    via = ""

    def _page(self, resource: str, filters: list[tuple[str, str, str]], offset: int,
              limit: int, options: QueryOptions) -> dict[str, Any]:
        raise NotImplementedError

    @property
    def source_url(self) -> str:
        """Where the answers come from, for provenance (strip credentials before storing)."""
        raise NotImplementedError

    def query(self, resource: str, filters: list[tuple[str, str, str]],
              options: QueryOptions | None = None, *,
              limit: int | None = None) -> list[dict[str, Any]]:
        """Every resource object of `resource` matching (attribute, operator, value) filters,
        page after page until `links.next` is null (or a short page)."""
        options = options or QueryOptions()
        limit = limit or PAGE_LIMIT
        items: list[dict[str, Any]] = []
        offset = 0
        while True:
            body = self._page(resource, filters, offset, limit, options)
            data = body.get("data")
            if not isinstance(data, list):
                raise ServiceError(f"OMS ({self.via}): {resource} answer without a 'data' list")
            items.extend(data)
            links = body.get("links")
            more = (links.get("next") is not None) if isinstance(links, dict) \
                else len(data) == limit
            if not data or not more:
                return items
            offset += limit

    def query_runs(self, filters: list[tuple[str, str, str]]) -> list[OmsRun]:
        """Every run matching (attribute, operator, value) filters, ascending, deduplicated."""
        found = {run.run_number: run for run in map(OmsRun.from_resource, self.query(
            "runs", filters, QueryOptions(fields=RUN_FIELDS, sort="run_number")))}
        return [found[n] for n in sorted(found)]

    def runs_started_since(self, start: datetime) -> list[OmsRun]:
        """Runs that started at or after `start`, ongoing ones included."""
        lo = utc(start)
        runs = self.query_runs([("start_time", "GE", iso(lo))])
        return [r for r in runs if r.start_time is None or r.start_time >= lo]

    def runs_numbered(self, first: int, last: int) -> list[OmsRun]:
        """Runs first..last (inclusive), ongoing ones included (end_time None)."""
        return self.query_runs([("run_number", "GE", str(first)),
                                ("run_number", "LE", str(last))])

    def ping(self) -> None:
        """One run, any run: the runs endpoint answers (and, direct, takes the token)."""
        self._page("runs", [], 0, 1, QueryOptions(fields=RUN_FIELDS, sort="run_number"))


class DirectOms(OmsRuns):
    """OMS through the unmodified omsapi client."""

    via = "direct"

    def __init__(self, settings: OmsSettings, *, policy: RetryPolicy | None = None) -> None:
        import omsapi

        self.settings = settings
        self.retrier = Retrier(policy or RetryPolicy(attempts=6))
        # omsapi's own retries off: the Retrier is the one layer (token renewal on 401 stays).
        self.api = omsapi.OMSAPI(api_url=settings.api_url, verbose=False,
                                 cert_verify=settings.verify, retry_on_err_sec=0,
                                 retry_on_err_attempts=0)
        self._authenticate()

    def _authenticate(self) -> None:
        """A fresh token. omsapi renews one itself on a 401 only if its last token is more
        than 30 s old, so a token that lives less than that (or a revoked one) would fail
        every request until then: dropping its token store makes `auth_oidc` start anew."""
        import omsapi

        settings = self.settings
        self.api.oms_auth = None
        with _omsapi_lock:
            # omsapi reads the token URL from this module global whenever it (re)authenticates.
            omsapi.cern_api_url = settings.token_url
            try:
                self.api.auth_oidc(settings.client_id, settings.client_secret,
                                   audience=settings.audience)
            except requests.ConnectionError:
                raise ServiceError(f"cannot reach the OMS token endpoint "
                                   f"{settings.token_url}") from None
            except Exception as exc:  # omsapi raises a bare Exception
                if "Unable to acquire OAuth token" not in str(exc):
                    raise
                raise ServiceError(
                    f"{settings.token_url} refused the client credentials of "
                    f"{settings.client_id!r} for audience {settings.audience!r}: check "
                    "login/password of oms_default (and its oms-api-access membership)"
                ) from None

    def _token_expiring(self) -> bool:
        """Whether the token ends within the next fifth of its life (at most 30 s). Renewing
        it before sending spares a 401 and a second request per try: under transient faults
        each extra request is one more chance for the try to fail."""
        auth = self.api.oms_auth
        token, issued = getattr(auth, "token_json", None), getattr(auth, "token_time", None)
        if not token or issued is None:
            return False
        life = float(token.get("expires_in") or 0)
        return life > 0 and time.time() >= issued + life - min(30.0, life / 5)

    @property
    def source_url(self) -> str:
        return self.settings.api_url

    def _page(self, resource: str, filters: list[tuple[str, str, str]], offset: int,
              limit: int, options: QueryOptions) -> dict[str, Any]:
        if offset % limit:
            raise ValueError("omsapi pages are whole multiples of the page size")

        def query() -> requests.Response:
            q = self.api.query(resource)  # reads <resource>/meta: may fail like any request
            if options.fields:
                q.attrs(list(options.fields))
            for attribute, op, value in filters:
                q.filter(attribute, value, op)
            if options.sort:
                q.sort(options.sort)
            for key, value in options.custom:
                q.custom(key, value)
            q.paginate(page=offset // limit + 1, per_page=limit)
            return q.data()

        def send() -> requests.Response:
            if self._token_expiring():
                self._authenticate()
            r = query()
            if r.status_code == 401:  # expired past omsapi's own renewal: a new token, once
                self._authenticate()
                r = query()
            return r

        what = f"OMS {resource} query"
        return self.retrier.call(send, lambda r: _classify(r, what), what)


def _classify(r: requests.Response, what: str) -> Outcome[dict[str, Any]]:
    if r.status_code == 200:
        try:
            return http.ok(orjson.loads(r.content))
        except orjson.JSONDecodeError:
            return http.retry("answer not JSON (cut short?)")
    if r.status_code == 500:  # OMS answers forced 500s now and then (docs/reference/oms.md §5)
        return http.retry("HTTP 500")
    return http.by_status(r, f"{what} answered HTTP {r.status_code}: {_short(r.content)}")


class DialsOmsProxy(OmsRuns):
    """OMS through DIALS' oms-proxy (no OMS credentials needed, DIALS' are used)."""

    via = "dials"

    def __init__(self, dials: DialsClient) -> None:
        self.dials = dials

    @property
    def source_url(self) -> str:
        return self.dials.settings.base_url.rstrip("/") + "/oms-proxy/"

    def _page(self, resource: str, filters: list[tuple[str, str, str]], offset: int,
              limit: int, options: QueryOptions) -> dict[str, Any]:
        params: dict[str, Any] = {"endpoint": resource}
        params |= {f"filter[{attribute}][{op}]": value for attribute, op, value in filters}
        params |= {"page[offset]": offset, "page[limit]": limit}
        body = self.dials.get_json("oms-proxy/", params,
                                   what=f"OMS {resource} via DIALS oms-proxy")
        if not isinstance(body, dict):
            raise ServiceError("DIALS oms-proxy answered something that is not an OMS page")
        return body


def oms_client(settings: OmsSettings, dials: DialsClient | None = None) -> OmsRuns:
    """The access path `settings.via` asks for; `dials` is needed for via=dials."""
    if settings.via == "dials":
        if dials is None:
            raise ServiceError("oms_default has via=dials but no DIALS client was given")
        return DialsOmsProxy(dials)
    return DirectOms(settings)


def _short(body: bytes) -> str:
    """OMS' error details (JSON:API `errors`), else the start of the body."""
    try:
        errors = orjson.loads(body).get("errors") or []
    except (orjson.JSONDecodeError, AttributeError):
        errors = []
    return "; ".join(str(e.get("detail")) for e in errors) or http.short_body(body)
