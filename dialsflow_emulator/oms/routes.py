"""OMS answers as JSON:API-like documents (docs/reference/oms.md §4), and the HTTP routes with the
bearer-token check (§5)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any
from urllib.parse import urlencode

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from ..httputil import base_url, bearer_token, json_response
from ..state import OMS_AUDIENCE, EmulatorState
from ..tokens import TokenError
from ..world.basics import iso
from .attributes import Row
from .query import Query, QueryError, parse_query, select
from .resources import RESOURCES, Resource

PREFIX = "/agg/api/v1"
UNAUTHORIZED = (
    b"<html>\n<head><title>401 Unauthorized</title></head>\n<body>\n"
    b"<center><h1>401 Unauthorized</h1></center>\n<hr><center>OMS API gateway</center>\n"
    b"</body>\n</html>\n"
)


def _render(value: Any, presentation: bool) -> Any:
    if isinstance(value, datetime):
        return value.strftime("%Y-%m-%d %H:%M:%S") if presentation else iso(value)
    return value


def _resource_object(res: Resource, row: Row, columns: list[int], presentation: bool) -> dict:
    attrs = res.attrs
    return {
        "id": res.row_id(row),
        "type": res.name,
        "attributes": {attrs[i].name: _render(row[i], presentation) for i in columns},
        "meta": {"row": {attrs[i].name: {"units": attrs[i].units}
                         for i in columns if attrs[i].units}},
    }


def _link(base: str, res: Resource, params: Sequence[tuple[str, str]], offset: int,
          limit: int) -> str:
    kept = [(k, v) for k, v in params if not k.startswith("page[")]
    query = urlencode([*kept, ("page[offset]", str(offset)), ("page[limit]", str(limit))],
                      safe="[],:")
    return f"{base}/{res.name}?{query}"


def _links(base: str, res: Resource, params: Sequence[tuple[str, str]], q: Query,
           total: int) -> dict[str, str | None]:
    last = max(0, (total - 1) // q.limit * q.limit)
    return {
        "self": _link(base, res, params, q.offset, q.limit),
        "first": _link(base, res, params, 0, q.limit),
        "prev": _link(base, res, params, max(0, q.offset - q.limit), q.limit)
        if q.offset > 0 else None,
        "next": _link(base, res, params, q.offset + q.limit, q.limit)
        if q.offset + q.limit < total else None,
        "last": _link(base, res, params, last, q.limit),
    }


def meta_body(res: Resource) -> dict[str, Any]:
    """`GET /{resource}/meta`: the field catalogue omsapi reads at query creation."""
    return {"meta": {"fields": res.catalogue, "fields_order": [a.name for a in res.attrs]}}


def query_response(state: EmulatorState, resource: str, params: list[tuple[str, str]],
                   base: str, now: datetime) -> tuple[int, dict]:
    """Run one collection query; shared by the HTTP route and the DIALS twin's oms-proxy.

    `params` are decoded (key, value) pairs such as ("filter[run_number][GE]", "379412");
    `base` is the absolute `.../agg/api/v1` used in `links`.
    """
    res = RESOURCES.get(resource.strip("/"))
    if res is None:
        return 404, QueryError(404, f"Resource '{resource}' not found").body()
    try:
        q = parse_query(res, params)
    except QueryError as exc:
        return exc.status, exc.body()
    rows = select(res, state.world, now, q)
    columns = q.fields if q.fields is not None else list(range(len(res.attrs)))
    presentation = "presentation_timestamp" in q.include
    page = rows[q.offset:q.offset + q.limit]
    body: dict[str, Any] = {
        "data": [_resource_object(res, row, columns, presentation) for row in page]}
    if "data_only" in q.include or "dataonly" in q.include:
        return 200, body
    body["links"] = _links(base, res, params, q, len(rows))
    body["meta"] = {"totalResourceCount": len(rows)}
    if "meta" in q.include:
        body["meta"].update(meta_body(res)["meta"])
    return 200, body


def object_response(state: EmulatorState, resource: str, object_id: str, base: str,
                    now: datetime) -> tuple[int, dict]:
    """`GET /{resource}/{id}`: one resource object, `data` an object (§1, optional)."""
    res = RESOURCES.get(resource)
    if res is None:
        return 404, QueryError(404, f"Resource '{resource}' not found").body()
    status, body = query_response(state, resource, res.id_filters(object_id), base, now)
    if status != 200 or not body["data"]:
        return 404, QueryError(404, f"No {resource} object with id '{object_id}'").body()
    return 200, {"data": body["data"][0], "links": {"self": f"{base}/{resource}/{object_id}"}}


def _authorized(state: EmulatorState, request: Request) -> bool:
    token = bearer_token(request)
    if not token:
        return False
    try:
        state.signer.verify(token, OMS_AUDIENCE)
    except TokenError:
        return False
    return True


def _unauthorized() -> Response:
    """Not JSON on purpose: clients detect an expired token by the 401 (§5)."""
    return Response(UNAUTHORIZED, 401, media_type="text/html",
                    headers={"WWW-Authenticate": 'Bearer realm="cmsoms"'})


def routes(state: EmulatorState) -> list[BaseRoute]:
    def endpoint(request: Request) -> Response:
        if not _authorized(state, request):
            return _unauthorized()
        parts = [p for p in request.path_params["path"].split("/") if p]
        now = state.now_for(request.headers)
        base = base_url(request) + PREFIX
        if len(parts) == 1:
            params = list(request.query_params.multi_items())
            status, body = query_response(state, parts[0], params, base, now)
        elif len(parts) == 2 and parts[1] == "meta" and parts[0] in RESOURCES:
            status, body = 200, meta_body(RESOURCES[parts[0]])
        elif len(parts) == 2:
            status, body = object_response(state, parts[0], parts[1], base, now)
        else:
            status, body = 404, QueryError(404, f"No endpoint {request.url.path}").body()
        return json_response(body, status)

    return [Route(PREFIX + "/{path:path}", endpoint, methods=["GET"])]
