"""Views over the resources: paginated lists, counts, retrieves, MEs and ML JSON exports."""

from __future__ import annotations

from collections.abc import Callable

import orjson
from starlette.requests import Request

from ..world.basics import ranges
from ..world.entities import MonitorElement
from .context import Ctx, Handler
from .cursors import decode_cursor, page_size, page_url
from .errors import detail, no_match
from .keyset import paginate
from .levels import dataset_level, me_ids, run_level
from .params import ME_PARAMS, NO_PARAMS, Params, within
from .resources import NUMPY, MlBadLumisections, Resource, project


def parse_fields(raw: str | None) -> frozenset[str] | None:
    if not raw:
        return None
    return frozenset(name.strip() for name in raw.split(","))


def envelope(next_url: str | None, previous_url: str | None, rows: list[bytes]) -> bytes:
    """DIALS' paginated body: next, previous, results; no count."""
    return b"".join((b'{"next":', orjson.dumps(next_url), b',"previous":',
                     orjson.dumps(previous_url), b',"results":[', b",".join(rows), b"]}"))


def list_handler(res: Resource) -> Handler:
    def handle(request: Request, ctx: Ctx) -> bytes:
        query = request.query_params
        p = Params(query, res.declared)
        cursor = decode_cursor(query.get("next_token"), res.key_len)
        selection = res.select(ctx, p)
        page = paginate(selection, cursor, page_size(query.get("page_size")))
        res.check_page(ctx, page.keys)
        fields = parse_fields(query.get("fields"))
        if fields is None:
            rows = [res.row_bytes(ctx, k) for k in page.keys]
        else:
            rows = [orjson.dumps(project(res.row(ctx, k, fields), fields), option=NUMPY)
                    for k in page.keys]
        return envelope(page_url(request, page.next), page_url(request, page.previous), rows)

    return handle


def count_handler(res: Resource) -> Handler:
    def handle(request: Request, ctx: Ctx) -> bytes:
        selection = res.select(ctx, Params(request.query_params, res.declared))
        return orjson.dumps({"count": sum(1 for _ in selection.walk())})

    return handle


def key_handler(res: Resource) -> Handler:
    """Composite-key GET: no `fields` (the serializer gets no request context)."""

    def handle(request: Request, ctx: Ctx) -> bytes:
        key = tuple(request.path_params.values())
        if not res.select(ctx, NO_PARAMS).contains(key):
            raise no_match(res.model)
        return res.row_bytes(ctx, key)

    return handle


def _pk(raw: str) -> int | None:
    """A router `{pk}` segment as an integer id; anything else matches no row."""
    return int(raw) if raw.isascii() and raw.isdigit() and len(raw) <= 30 else None


def retrieve_handler(res: Resource) -> Handler:
    """Router-style retrieve (`{pk}/`): any string reaches the view; `fields` applies."""

    def handle(request: Request, ctx: Ctx) -> bytes:
        pk = _pk(next(iter(request.path_params.values())))
        key = (-1 if pk is None else pk,)
        if not res.select(ctx, NO_PARAMS).contains(key):
            raise no_match(res.model)
        fields = parse_fields(request.query_params.get("fields"))
        return orjson.dumps(project(res.row(ctx, key, fields), fields))

    return handle


def _me_row(me: MonitorElement, stored: int) -> dict:
    return {"me_id": me.me_id, "me": me.name, "count": stored, "dim": me.dim}


def stored_per_me(ctx: Ctx) -> int:
    """Histograms DIALS holds per ME of the workspace: every ME is in every ingested LS."""
    return sum(len(ctx.dials_ls(d, run)) for d in ctx.datasets for run in ctx.runs_in_dials(d))


MES_PARAMS = ("fields", *ME_PARAMS, "dim")


def mes_list(request: Request, ctx: Ctx) -> bytes:
    """Bare list, not paginated (pagination_class = None), ordered by me_id."""
    p = Params(request.query_params, MES_PARAMS)
    dims = p.id_set("dim")
    chosen = [ctx.mes[i] for i in me_ids(ctx, p, None) if within(ctx.mes[i].dim, dims)]
    stored = stored_per_me(ctx) if chosen else 0
    fields = parse_fields(request.query_params.get("fields"))
    return orjson.dumps([project(_me_row(m, stored), fields) for m in chosen])


def mes_retrieve(request: Request, ctx: Ctx) -> bytes:
    pk = _pk(request.path_params["me_id"])
    me = None if pk is None else ctx.mes.get(pk)
    if me is None:
        raise no_match("MEs")
    fields = parse_fields(request.query_params.get("fields"))
    return orjson.dumps(project(_me_row(me, stored_per_me(ctx)), fields))


def mes_of_run(request: Request, ctx: Ctx) -> bytes:
    """MEs in the lowest LS of a run (frontend route). No LS: [] (real DIALS: HTML 500)."""
    dataset_id, run = request.path_params["dataset_id"], request.path_params["run_number"]
    if dataset_id not in ctx.datasets or not ctx.dials_ls(dataset_id, run):
        return b"[]"
    return orjson.dumps([{"me_id": m.me_id, "me": m.name, "dim": m.dim}
                         for m in ctx.mes.values()])


# ---- ml-bad-lumisection JSON exports


def _ml_params(request: Request, body: bytes) -> Params:
    """cert-json / golden-json take lists by query (OpenAPI) or by JSON body (cmsdials POST)."""
    names = ("model_id__in", "dataset_id__in", "run_number__in")
    if request.method != "POST":
        return Params(request.query_params, names)
    try:
        data = orjson.loads(body or b"{}")
    except orjson.JSONDecodeError as exc:
        raise detail(400, f"JSON parse error - {exc}") from exc
    if not isinstance(data, dict):
        raise detail(400, "Invalid data. Expected a dictionary.")
    query = {k: ",".join(map(str, v)) if isinstance(v, list) else str(v)
             for k, v in data.items() if k in names and v is not None}
    return Params(query, names)


def cert_json(res: MlBadLumisections) -> Callable[[Request, Ctx, bytes], bytes]:
    def handle(request: Request, ctx: Ctx, body: bytes) -> bytes:
        out: dict[str, dict[str, list[dict]]] = {}
        models = {m.model_id: m for m in ctx.world.ml_models}
        keys = res.select(ctx, _ml_params(request, body)).walk()
        for model_id, _dataset_id, run, ls, me_id in keys:
            out.setdefault(str(run), {}).setdefault(str(ls), []).append({
                "model_id": model_id, "me_id": me_id, "filename": models[model_id].filename,
                "me": ctx.mes[me_id].name})
        return orjson.dumps(dict(sorted(out.items(), key=lambda kv: int(kv[0]))))

    return handle


def golden_json(res: MlBadLumisections) -> Callable[[Request, Ctx, bytes], bytes]:
    """LS ranges DIALS holds that no selected model flagged, per run."""

    def handle(request: Request, ctx: Ctx, body: bytes) -> bytes:
        p = _ml_params(request, body)
        flagged: dict[int, set[int]] = {}
        for _model, _dataset, run, ls, _me in res.select(ctx, p).walk():
            flagged.setdefault(run, set()).add(ls)
        datasets, runs = dataset_level(ctx, p)(()), run_level(ctx, p, 0)
        good: dict[int, set[int]] = {}
        for dataset_id in datasets:
            for run in runs((dataset_id,)):
                good.setdefault(run, set()).update(ctx.dials_ls(dataset_id, run))
        return orjson.dumps({str(run): ranges(sorted(good[run] - flagged.get(run, set())))
                             for run in sorted(good)})

    return handle
