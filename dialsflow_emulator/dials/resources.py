"""What each DIALS model answers: its declared filters, its key space and its rows."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Any

import orjson

from ..histograms import entries_for, histogram
from ..httputil import server_error_html
from ..world.basics import iso, stable_int
from ..world.entities import MlModel, MonitorElement
from .cache import BytesCache
from .context import Ctx
from .cursors import Key
from .errors import ApiError
from .keyset import Selection
from .levels import dataset_level, file_matcher, files_by_dataset, ls_level, me_ids, run_level
from .params import (
    BIG,
    DATASET_PARAMS,
    LFN_PARAMS,
    LS_PARAMS,
    ME_PARAMS,
    PAGING,
    RUN_PARAMS,
    Params,
    within,
)

NUMPY = orjson.OPT_SERIALIZE_NUMPY


def project(row: dict, fields: frozenset[str] | None) -> dict:
    """DIALS FieldsMixin: keep the named fields in serializer order; unknown names ignored."""
    return row if fields is None else {k: v for k, v in row.items() if k in fields}


class Resource:
    """One DIALS model: its filters, key space and row serializer."""

    model = ""
    declared: tuple[str, ...] = ()
    key_len = 1

    def select(self, ctx: Ctx, p: Params) -> Selection:
        raise NotImplementedError

    def row(self, ctx: Ctx, key: Key, fields: frozenset[str] | None = None) -> dict:
        raise NotImplementedError

    def row_bytes(self, ctx: Ctx, key: Key) -> bytes:
        return orjson.dumps(self.row(ctx, key))

    def check_page(self, ctx: Ctx, keys: list[Key]) -> None:
        """Hook to fail a page (planted permanent failures)."""


class DatasetIndex(Resource):
    model = "DatasetIndex"
    declared = (*PAGING, *DATASET_PARAMS)

    def select(self, ctx: Ctx, p: Params) -> Selection:
        return Selection((dataset_level(ctx, p),))

    def row(self, ctx: Ctx, key: Key, fields: frozenset[str] | None = None) -> dict:
        d = ctx.datasets[key[0]]
        registered = [f.registered_at for f in files_by_dataset(ctx.world).get(d.dataset_id, [])
                      if f.registered_at <= ctx.now]
        return {
            "dataset_id": d.dataset_id, "dataset": d.name, "era": d.era,
            "data_tier": d.name.rsplit("/", 1)[1], "primary_ds_name": d.primary,
            "processed_ds_name": d.processed, "processing_version": d.processing_version,
            "last_modification_date": iso(max([d.created_at, *registered])),
        }


class FileIndex(Resource):
    model = "FileIndex"
    declared = (*PAGING, "dataset_id", *LFN_PARAMS, "status", "min_size", *DATASET_PARAMS)
    key_len = 2

    def select(self, ctx: Ctx, p: Params) -> Selection:
        status, min_size, named = p.text("status"), p.number("min_size"), p.matcher(
            "logical_file_name")
        by_dataset = files_by_dataset(ctx.world)

        def files(prefix: Key) -> list[int]:
            out = []
            for f in by_dataset.get(prefix[0], []):
                seen = f.dials_status(ctx.now)
                if (seen is not None and (status is None or seen == status)
                        and (min_size is None or f.size >= min_size) and named(f.lfn)):
                    out.append(f.file_id)
            return out

        return Selection((dataset_level(ctx, p), files))

    def row(self, ctx: Ctx, key: Key, fields: frozenset[str] | None = None) -> dict:
        f = ctx.world.file_by_id[key[1]]
        return {
            "dataset_id": f.dataset_id, "dataset": ctx.datasets[f.dataset_id].name,
            "file_id": f.file_id, "file_size": f.size, "creation_date": iso(f.registered_at),
            "last_modification_date": iso(f.registered_at), "logical_file_name": f.lfn,
            "status": f.dials_status(ctx.now),
            "err_trace": f.err_trace if f.dials_status(ctx.now) == f.final_status else None,
        }


class Runs(Resource):
    model = "Run"
    declared = (*PAGING, "dataset_id", "dataset_id__in", *RUN_PARAMS, *DATASET_PARAMS)
    key_len = 2

    def select(self, ctx: Ctx, p: Params) -> Selection:
        return Selection((dataset_level(ctx, p), run_level(ctx, p, 0)))

    def row(self, ctx: Ctx, key: Key, fields: frozenset[str] | None = None) -> dict:
        dataset_id, run = key
        in_dials = len(ctx.dials_ls(dataset_id, run))
        in_dbs = len(ctx.world.dbs_ls(dataset_id, run, ctx.now))
        return {
            "dataset_id": dataset_id, "dataset": ctx.datasets[dataset_id].name,
            "run_number": run, "ls_count": in_dials,
            # Not published anywhere (docs/reference/dials.md §8.2): share of the DBS LS DIALS
            # holds.
            "ls_completeness": in_dials / in_dbs if in_dbs else None,
        }


class Lumisections(Resource):
    model = "Lumisection"
    declared = (*PAGING, "dataset_id", *RUN_PARAMS, *LS_PARAMS, *DATASET_PARAMS)
    key_len = 3

    def select(self, ctx: Ctx, p: Params) -> Selection:
        return Selection((dataset_level(ctx, p), run_level(ctx, p, 0), ls_level(ctx, p, 0)))

    def row(self, ctx: Ctx, key: Key, fields: frozenset[str] | None = None) -> dict:
        dataset_id, run, ls = key
        return {
            "dataset_id": dataset_id, "dataset": ctx.datasets[dataset_id].name,
            "run_number": run, "ls_number": ls, "th1_count": ctx.me_count(1),
            "th2_count": ctx.me_count(2),
        }


class Histograms(Resource):
    """th1/th2: rows are the hot path, so their JSON is built once and cached as bytes."""

    declared = (*PAGING, "dataset_id", "file_id", *RUN_PARAMS, *LS_PARAMS, "me_id",
                "entries__gte", *DATASET_PARAMS, *LFN_PARAMS, *ME_PARAMS)
    key_len = 4

    def __init__(self, dim: int, cache: BytesCache) -> None:
        self.dim = dim
        self.model = f"TH{dim}"
        self.cache = cache

    def select(self, ctx: Ctx, p: Params) -> Selection:
        mes = me_ids(ctx, p, self.dim)
        levels = (dataset_level(ctx, p), run_level(ctx, p, 0),
                  ls_level(ctx, p, 0, file_matcher(p)), lambda prefix: mes)
        least = p.int_range("entries")[0]
        if least == -BIG:
            return Selection(levels)
        return Selection(levels, lambda k: entries_for(
            ctx.seed, k[0], k[1], k[2], ctx.mes[k[3]]) >= least)

    def row(self, ctx: Ctx, key: Key, fields: frozenset[str] | None = None) -> dict:
        dataset_id, run, ls, me_id = key
        me = ctx.mes[me_id]
        row: dict[str, Any] = {
            "dataset_id": dataset_id, "dataset": ctx.datasets[dataset_id].name, "me": me.name,
            "file_id": ctx.world.file_for_ls(dataset_id, run, ls).file_id, "run_number": run,
            "ls_number": ls, "me_id": me_id, "x_min": float(me.x_min),
            "x_max": float(me.x_max), "x_bin": me.x_bin,
        }
        if me.dim == 2:
            row.update(y_min=float(me.y_min), y_max=float(me.y_max), y_bin=me.y_bin)
        row["entries"] = entries_for(ctx.seed, dataset_id, run, ls, me)
        if fields is None or "data" in fields:  # the expensive part
            row["data"] = histogram(ctx.seed, dataset_id, run, ls, me)
        return row

    def row_bytes(self, ctx: Ctx, key: Key) -> bytes:
        cache_key = (ctx.seed, ctx.workspace, *key)
        body = self.cache.get(cache_key)
        if body is None:
            body = orjson.dumps(self.row(ctx, key), option=NUMPY)
            self.cache.put(cache_key, body)
        return body

    def check_page(self, ctx: Ctx, keys: list[Key]) -> None:
        failing = ctx.state.failing_me
        if not failing:
            return
        names = {ctx.mes[k[3]].name for k in keys}
        try:
            hit = any(re.search(failing, name) for name in names)
        except re.error:
            hit = False
        if hit:
            raise ApiError(server_error_html())


def _model_me(ctx: Ctx, m: MlModel) -> MonitorElement | None:
    return ctx.me_named(m.target_me) if m.workspace == ctx.workspace else None


class MlModels(Resource):
    """Superset row: the OpenAPI fields (model_id, filename, ...) and cmsdials 2.4.1's."""

    model = "MLModelsIndex"
    declared = (*PAGING, "model_id", "model_id__in", "filename", "filename__regex",
                "target_me", "target_me__regex", "active", "id", "id__in", "name",
                "name__regex", "ready", "type", "input_signature_contains_me",
                "input_signature_contains_me__regex", "tag_name", "tag_value")

    def select(self, ctx: Ctx, p: Params) -> Selection:
        checks = [
            lambda r: within(r["model_id"], p.id_set("model_id")),
            lambda r: within(r["id"], p.id_set("id")),
            lambda r: p.matcher("filename")(r["filename"]),
            lambda r: p.matcher("name")(r["name"]),
            lambda r: p.matcher("target_me")(r["target_me"]),
            lambda r: p.matcher("input_signature_contains_me")(r["target_me"]),
            lambda r: p.flag("active") in (None, r["active"]),
            lambda r: p.flag("ready") in (None, r["ready"]),
            lambda r: p.text("type") in (None, r["type"]),
            lambda r: p.text("tag_name") in (None, *(t["name"] for t in r["tags"])),
            lambda r: p.text("tag_value") in (None, *(t["value"] for t in r["tags"])),
        ]
        rows = [self.row(ctx, (m.model_id,)) for m in ctx.world.ml_models
                if m.workspace == ctx.workspace]
        chosen = sorted(r["model_id"] for r in rows if all(c(r) for c in checks))
        return Selection((lambda prefix: chosen,))

    def row(self, ctx: Ctx, key: Key, fields: frozenset[str] | None = None) -> dict:
        m = next(m for m in ctx.world.ml_models if m.model_id == key[0])
        me = _model_me(ctx, m)
        created = iso(ctx.world.profile.start - timedelta(days=30 - m.model_id))
        return {
            "model_id": m.model_id, "filename": m.filename, "target_me": m.target_me,
            "active": m.active, "id": m.model_id, "name": m.filename.rsplit(".", 1)[0],
            "revision": 1, "ready": True, "type": "onnx", "anomaly_threshold": 0.1,
            "builtin_threshold": False, "description": f"Anomaly score of {m.target_me}",
            "flagging_key": None, "metric_key": "mse",
            "input_signature": [{"name": "input", "me": m.target_me,
                                 "dim": me.dim if me else None}],
            "output_signature": [{"name": "mse", "dtype": "float32"}],
            "tags": [{"name": "workspace", "value": m.workspace}],
            "isvc_service_name": f"model-{m.model_id}", "isvc_yaml": None,
            "created_by": "dialsflow-emulator", "modified_by": "dialsflow-emulator",
            "created_at": created, "modified_at": created,
        }


class MlBadLumisections(Resource):
    """LS flagged by a model: empty LS of its ME, plus a deterministic ~3 % of the others."""

    model = "MLBadLumisection"
    declared = (*PAGING, "model_id", "model_id__in", "dataset_id", "dataset_id__in",
                *DATASET_PARAMS, "me_id", *ME_PARAMS, "run_number", "run_number__in",
                "ls_number")
    key_len = 5

    def select(self, ctx: Ctx, p: Params) -> Selection:
        mes = set(me_ids(ctx, p, None))
        allowed = p.id_set("model_id")
        models = {m.model_id: me.me_id for m in ctx.world.ml_models
                  if (me := _model_me(ctx, m)) is not None and me.me_id in mes
                  and within(m.model_id, allowed)}
        chosen = sorted(models)
        ls_numbers = ls_level(ctx, p, 1)

        def bad_ls(prefix: Key) -> list[int]:
            model_id, dataset_id, run = prefix
            me = ctx.mes[models[model_id]]
            return [ls for ls in ls_numbers(prefix)
                    if self.flagged(ctx, model_id, dataset_id, run, ls, me)]

        return Selection((lambda prefix: chosen, dataset_level(ctx, p), run_level(ctx, p, 1),
                          bad_ls, lambda prefix: [models[prefix[0]]]))

    @staticmethod
    def flagged(ctx: Ctx, model_id: int, dataset_id: int, run: int, ls: int,
                me: MonitorElement) -> bool:
        return (entries_for(ctx.seed, dataset_id, run, ls, me) == 0
                or stable_int("ml-bad", ctx.seed, model_id, dataset_id, run, ls) % 33 == 0)

    def row(self, ctx: Ctx, key: Key, fields: frozenset[str] | None = None) -> dict:
        model_id, dataset_id, run, ls, me_id = key
        score = 0.1 + stable_int("ml-score", ctx.seed, *key) % 10_000 / 4_000
        return {
            "model_id": model_id, "dataset_id": dataset_id,
            "file_id": ctx.world.file_for_ls(dataset_id, run, ls).file_id,
            "run_number": run, "ls_number": ls, "me_id": me_id, "mse": score,
            "metric_value": score,
        }
