"""DIALS' URL table and request pipeline: auth, method, clock, workspace, body cache."""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from urllib.parse import quote

from starlette.convertors import Convertor, register_url_convertor
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Match, Route

from ..httputil import json_response, not_found_html, raw_json
from ..state import EmulatorState
from ..world.entities import DEFAULT_WORKSPACE
from .auth import authenticate, default_workspace, new_device, workspaces
from .cache import BytesCache
from .context import make_ctx, request_workspace
from .errors import ApiError
from .handlers import (
    cert_json,
    count_handler,
    golden_json,
    key_handler,
    list_handler,
    mes_list,
    mes_of_run,
    mes_retrieve,
    retrieve_handler,
)
from .resources import (
    DatasetIndex,
    FileIndex,
    Histograms,
    Lumisections,
    MlBadLumisections,
    MlModels,
    Runs,
)
from .server import RENDER_KEY
from .thirdparty import brilcalc_lumi, caf, editable_datasets, oms_proxy

API = "/api/v1"
ROW_CACHE_BYTES = 512 * 2**20
PAGE_CACHE_BYTES = 256 * 2**20
PAGE_CACHE_TTL_S = 30.0  # DIALS CACHE_TTL


class _DigitsConvertor(Convertor[int]):
    """Like Starlette's `int`, but bounded so absurd path numbers fail to match, not to parse."""

    regex = "[0-9]{1,30}"

    def convert(self, value: str) -> int:
        return int(value)

    def to_string(self, value: int) -> str:
        return str(value)


register_url_convertor("dials_int", _DigitsConvertor())


@dataclass(frozen=True)
class Options:
    """How the endpoint wrapper treats a route."""

    public: bool = False  # no authentication (auth/new-device/)
    workspace: bool = True  # reads the Workspace header (data routes)
    cached: bool = True  # 30 s page cache (DIALS: cache_page on list and key/retrieve views)
    methods: tuple[str, ...] = ("GET", "HEAD")
    with_body: bool = False  # handler(request, ctx, body): POST JSON exports


@dataclass
class Endpoints:
    """Wraps handlers with DIALS' request pipeline: auth, method, clock, workspace, cache."""

    state: EmulatorState
    pages: BytesCache = field(default_factory=lambda: BytesCache(PAGE_CACHE_BYTES,
                                                                 PAGE_CACHE_TTL_S))

    def wrap(self, handler: Callable, options: Options) -> Callable:
        state = self.state

        async def endpoint(request: Request) -> Response:
            if not options.public and (denied := authenticate(state, request)) is not None:
                return denied
            if request.method not in options.methods:
                return json_response(
                    {"detail": f'Method "{request.method}" not allowed.'}, 405)
            try:
                now = state.now_for(request.headers)
                workspace = request_workspace(request) if options.workspace else \
                    DEFAULT_WORKSPACE
            except ValueError:
                return json_response({"detail": "X-Emulator-Now is not ISO 8601"}, 400)
            except ApiError as exc:
                return exc.response
            # Django's cache_page keys on the absolute URL and, by vary_on_headers, the raw
            # Workspace header. The world clock is part of the key too: tests move it
            # (X-Emulator-Now, PUT /_emulator/clock) faster than 30 s pass, and a page
            # rendered at another "now" would show another world.
            render = request.scope.get(RENDER_KEY)
            cache_key = (request.headers.get("workspace"), str(request.url), now,
                         state.failing_me)
            if options.cached and (body := self.pages.get(cache_key)) is not None:
                if render is not None:
                    render.cache_hit = True
                return raw_json(body)
            ctx = make_ctx(state, workspace, now)
            try:
                if options.with_body:
                    result = handler(request, ctx, await request.body())
                else:
                    result = handler(request, ctx)
            except ApiError as exc:
                return exc.response
            if isinstance(result, Response):
                return result
            if options.cached:  # stored once rendering finished (dials/server.py)
                store = functools.partial(self.pages.put, cache_key, result)
                if render is None:
                    store()
                else:
                    render.store = store
            return raw_json(result)

        return endpoint


def _resolves(routes: Sequence[BaseRoute], path: str) -> bool:
    scope = {"type": "http", "path": path, "method": "GET"}
    return any(r.matches(scope)[0] is not Match.NONE for r in routes)


def fallback(routes: Sequence[BaseRoute]) -> Callable:
    """Django: APPEND_SLASH 301 when the slashed path exists, else the HTML 404 page."""

    async def missing(request: Request) -> Response:
        path = request.url.path
        if not path.endswith("/") and _resolves(routes, path + "/"):
            query = request.url.query
            target = quote(path, safe=URI_SAFE) + "/" + (f"?{query}" if query else "")
            return Response(status_code=301, headers={"location": target})
        return not_found_html()

    return missing


URI_SAFE = "/:@&+$,-_.!~*'()"  # Django escape_uri_path
ALL_METHODS = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]


def routes(state: EmulatorState) -> list[BaseRoute]:
    rows = BytesCache(ROW_CACHE_BYTES)
    th1, th2 = Histograms(1, rows), Histograms(2, rows)
    datasets, files, runs, lumis = DatasetIndex(), FileIndex(), Runs(), Lumisections()
    models, bad = MlModels(), MlBadLumisections()
    ep = Endpoints(state)
    # cache_page decorates only list, retrieve and the composite-key views; counts, the MEs
    # of a run, exports and the other services' views are rendered every time
    # [cms-DQM/dials: backend/*/viewsets.py]
    fresh = Options(cached=False)
    anywhere = Options(workspace=False, cached=False)
    exports = Options(methods=("GET", "HEAD", "POST"), with_body=True, cached=False)
    n = "{%s:dials_int}"
    table: list[tuple[str, Callable, Options]] = [
        ("dataset-index/", list_handler(datasets), Options()),
        ("dataset-index/{dataset_id}/", retrieve_handler(datasets), Options()),
        ("file-index/", list_handler(files), Options()),
        ("file-index/count/", count_handler(files), fresh),
        (f"file-index/{n % 'dataset_id'}/{n % 'file_id'}/", key_handler(files), Options()),
        ("run/", list_handler(runs), Options()),
        ("run/count/", count_handler(runs), fresh),
        (f"run/{n % 'dataset_id'}/{n % 'run_number'}/", key_handler(runs), Options()),
        ("lumisection/", list_handler(lumis), Options()),
        ("lumisection/count/", count_handler(lumis), fresh),
        (f"lumisection/{n % 'dataset_id'}/{n % 'run_number'}/{n % 'ls_number'}/",
         key_handler(lumis), Options()),
        *[(f"{res.model.lower()}/", list_handler(res), Options()) for res in (th1, th2)],
        *[(f"{res.model.lower()}/{n % 'dataset_id'}/{n % 'run_number'}/{n % 'ls_number'}/"
           f"{n % 'me_id'}/", key_handler(res), Options()) for res in (th1, th2)],
        ("mes/", mes_list, Options()),
        ("mes/{me_id}/", mes_retrieve, Options()),
        (f"mes/{n % 'dataset_id'}/{n % 'run_number'}/", mes_of_run, fresh),
        ("ml-models-index/", list_handler(models), Options()),
        ("ml-models-index/{model_id}/", retrieve_handler(models), Options()),
        ("ml-bad-lumisection/", list_handler(bad), Options()),
        ("ml-bad-lumisection/cert-json/", cert_json(bad), exports),
        ("ml-bad-lumisection/golden-json/", golden_json(bad), exports),
        (f"ml-bad-lumisection/{n % 'model_id'}/{n % 'dataset_id'}/{n % 'run_number'}/"
         f"{n % 'ls_number'}/{n % 'me_id'}/", key_handler(bad), Options()),
        ("workspaces/", workspaces, anywhere),
        ("workspaces/my-default/", default_workspace, anywhere),
        ("auth/workspaces/", workspaces, anywhere),
        ("auth/user-default-workspace/", default_workspace, anywhere),
        ("auth/new-device/", new_device(state), Options(public=True, workspace=False,
                                                        cached=False)),
        ("oms-proxy/", oms_proxy, Options(workspace=False, cached=False)),
        ("caf/", caf, anywhere),
        ("runregistry/editable-datasets/", editable_datasets, anywhere),
        ("brilws/brilcalc-lumi/", brilcalc_lumi, anywhere),
    ]
    served: list[BaseRoute] = [Route(f"{API}/{path}", ep.wrap(handler, options),
                                     methods=ALL_METHODS)
                               for path, handler, options in table]
    missing = fallback(served)
    return [*served, Route(API, missing, methods=ALL_METHODS),
            Route(API + "/{rest:path}", missing, methods=ALL_METHODS)]
