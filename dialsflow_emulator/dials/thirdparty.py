"""DIALS' views of other services: CAF files, Run Registry states, brilcalc, the OMS proxy."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime

import orjson
from starlette.requests import Request
from starlette.responses import Response

from .. import caf as caf_area
from .. import oms
from ..httputil import base_url, json_response, server_error_html
from ..world.basics import iso, utc
from ..world.entities import WORLD_KINDS, Run
from ..world.model import World
from .context import Ctx
from .errors import ApiError, detail

CAF_BASE = "/CAF/certification/"


def _required(query: Mapping[str, str], *names: str) -> list[str]:
    missing = {n: ["This field is required."] for n in names if not query.get(n)}
    if missing:
        raise ApiError(json_response(missing, 400))
    return [query[n] for n in names]


def caf(request: Request, ctx: Ctx) -> bytes:
    """The latest CAF file of a kind, chosen by time like DIALS' CAF client."""
    class_name, kind = _required(request.query_params, "class_name", "kind")
    if kind not in WORLD_KINDS:
        raise ApiError(json_response(
            {"kind": [f'"{kind}" is not a valid choice.']}, 400))
    cert = ctx.world.latest_cert(kind, ctx.now)
    if cert is None or not cert.path.startswith(class_name + "/"):
        raise detail(404, "Not found.")
    return orjson.dumps({
        "name": cert.path.rsplit("/", 1)[1],
        "url": f"{base_url(request)}{CAF_BASE}{cert.path}",
        "last_modified": cert.published_at.strftime("%Y-%m-%d %H:%M"),
        "size": caf_area.apache_size(len(caf_area.cert_bytes(cert))).strip(),
        "content": cert.content,
    })


#: Run Registry global states of an offline dataset [cms-DQM/runregistry:
#: runregistry_backend/cron_datasets/1.create_datasets.js, 2.ping_dqm_gui.js,
#: controllers/dataset.js]. SIGNOFF (workspaces signed off, not yet completed by the DC
#: experts) is not modelled: the world knows only when a run's certification was decided.
WAITING_DQM_GUI, OPEN, COMPLETED = "waiting dqm gui", "OPEN", "COMPLETED"


def rr_global_state(world: World, run: Run, now: datetime) -> str | None:
    """The Run Registry global state at `now` of a 13.6 TeV collision run's PromptReco
    dataset (None: no such dataset, or the run has not ended).

    Run Registry creates the offline datasets at the online sign-off of the run as
    `waiting dqm gui`, moves them to OPEN when the DQM GUI shows the PromptReco DQMIO (here:
    when DBS registered it) and the DC experts move them to COMPLETED once the certification
    is decided: the world's `RunCertification.ready_at`, weeks to months after the run
    ended. The Golden JSON that holds the run is the next cumulative release after that
    (`certified_at`), so COMPLETED runs may not be in any Golden JSON yet. Bad runs are
    decided (COMPLETED) too; the decertified run stays COMPLETED (its re-decision is not
    modelled)."""
    cert = world.run_certification.get(run.number)
    if cert is None or run.end > now:
        return None
    if cert.ready_at <= now:
        return COMPLETED
    prompt = [f.registered_at for d in world.datasets if d.processing_string == "PromptReco"
              for f in world.files_of(d.dataset_id, run.number)]
    return OPEN if prompt and min(prompt) <= now else WAITING_DQM_GUI


def editable_datasets(request: Request, ctx: Ctx) -> bytes:
    """Run Registry runs of a class and offline dataset in one global state, ascending, as
    DIALS' runregistry client returns them [cms-DQM/dials:
    backend/runregistry_min/client.py, viewsets.py]; states as `rr_global_state`, compared
    exactly as Run Registry's filter does. The world holds one offline dataset per run (the
    PromptReco one, `/PromptReco/Collisions2024/DQM`), so `dataset_name` is not checked."""
    class_name, _dataset, global_state = _required(
        request.query_params, "class_name", "dataset_name", "global_state")
    world = ctx.world
    if class_name != world.cert_class:
        return b"[]"
    return orjson.dumps([r.number for r in world.runs
                         if rr_global_state(world, r, ctx.now) == global_state])


UNITS = {"/ub": 1.0, "/nb": 1e-3, "/pb": 1e-6, "/fb": 1e-9}


def _int_param(query: Mapping[str, str], name: str) -> int | None:
    raw = query.get(name)
    if not raw:
        return None
    try:
        return int(raw)
    except ValueError as exc:
        raise ApiError(json_response({name: ["A valid integer is required."]}, 400)) from exc


def _lumi_runs(ctx: Ctx, query: Mapping[str, str]) -> list[Run]:
    """Runs brilcalc would report: ended by now, selected by run, fill or begin/end."""
    run, fill = _int_param(query, "runnumber"), _int_param(query, "fillnum")
    begin, end = query.get("begin"), query.get("end")
    stable_only = "STABLE" in (query.get("beamstatus") or "").upper()
    out = []
    for r in ctx.world.runs:
        if r.end > ctx.now or (run is not None and r.number != run):
            continue
        if (fill is not None and r.fill != fill) or (stable_only and not r.stable_beam):
            continue
        if not (_after(r, begin, lower=True) and _after(r, end, lower=False)):
            continue
        out.append(r)
    return out


def _after(run: Run, bound: str | None, *, lower: bool) -> bool:
    """brilcalc --begin/--end: a run number, a fill number or 'mm/dd/yy hh:mm:ss'."""
    if not bound:
        return True
    bound = bound.strip()
    if bound.isascii() and bound.isdigit():
        number = int(bound[:12])
        value = run.number if number >= 100_000 else run.fill
        return value >= number if lower else value <= number
    try:
        moment = utc(datetime.strptime(bound, "%m/%d/%y %H:%M:%S").isoformat())
    except ValueError as exc:
        raise ApiError(json_response({"begin" if lower else "end": [
            "Use a run or fill number, or mm/dd/yy hh:mm:ss."]}, 400)) from exc
    return run.start >= moment if lower else run.start <= moment


def brilcalc_lumi(request: Request, ctx: Ctx) -> bytes:
    """brilcalc lumi as JSON: per run (or per LS with byls) delivered/recorded, and totals."""
    query = request.query_params
    unit = query.get("unit") or "/ub"
    scale = UNITS.get(unit)
    if scale is None:
        raise ApiError(json_response({"unit": [f"Unknown unit {unit!r}."]}, 400))
    byls = (query.get("byls") or "").lower() in ("true", "1")
    world = ctx.world
    rows, totals = [], [0.0, 0.0]
    for r in _lumi_runs(ctx, query):
        per_ls = [world.lumi_per_ls(r.number, ls) * scale for ls in range(1, r.n_ls + 1)]
        recorded = [v * 0.97 for v in per_ls]
        totals[0] += sum(per_ls)
        totals[1] += sum(recorded)
        if byls:
            rows.extend({
                "run": r.number, "fill": r.fill, "ls": ls, "time": iso(r.ls_start(ls)),
                "beamstatus": "STABLE BEAMS" if r.stable_beam else "ADJUST", "E": 6800,
                "delivered": per_ls[ls - 1], "recorded": recorded[ls - 1], "avgpu": r.pileup,
                "source": "HFOC",
            } for ls in range(1, r.n_ls + 1))
        else:
            rows.append({"run": r.number, "fill": r.fill, "time": iso(r.start),
                         "nls": r.n_ls, "ncms": r.n_ls, "delivered": sum(per_ls),
                         "recorded": sum(recorded)})
    runs = {row["run"] for row in rows}
    return orjson.dumps({
        "unit": unit, "detailed": rows,
        "summary": {"nfill": len({row["fill"] for row in rows}), "nrun": len(runs),
                    "totdelivered": totals[0], "totrecorded": totals[1]},
    })


def oms_proxy(request: Request, ctx: Ctx) -> Response:
    """Forward to the OMS twin as DIALS forwards to OMS (cmsdials OMSProxyClient.query).

    DIALS' view pops `endpoint` from the query (a KeyError when it is missing) and its client
    calls `raise_for_status()` on OMS' answer; neither is caught, so any OMS error, and a
    missing `endpoint`, reach Django as an unhandled exception: the HTML 500 page, never
    OMS' own status or body [cms-DQM/dials: backend/oms_proxy/viewsets.py, client.py]. The
    answer's `links` keep pointing at OMS itself.
    """
    resource = request.query_params.get("endpoint")
    if resource is None:
        return server_error_html()
    params = [(k, v) for k, v in request.query_params.multi_items() if k != "endpoint"]
    status, body = oms.query_response(ctx.state, resource, params,
                                      f"{base_url(request)}/agg/api/v1", ctx.now)
    if not 200 <= status < 300:
        return server_error_html()
    return json_response(body, status)
