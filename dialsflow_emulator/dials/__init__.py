"""DIALS REST API twin: `/api/v1/...` as cmsdials 2.4.1 and the scripts built on it see it.

Contract: docs/reference/dials.md (§1 common rules, §2 endpoints, §3 auth) and the
OpenAPI file next to it. Every answer is derived from the `World` at the request's clock:
a run, lumisection or histogram exists in DIALS iff its LS is in
`World.dials_ls(dataset_id, run, now)`.

Speed (the twin must serve ≥ 50 MB/s of th2 JSON on one core, with `--no-gzip`; nginx's
gzip, on by default as in production, costs about 10 ms per MB more): th1/th2 rows are
serialised once and kept as bytes in an LRU bounded by size; a page is the join of its rows;
whole bodies are cached 30 s per URL like DIALS' Redis cache. Keys are walked lazily in
composite-key order with keyset (bisect) skipping, so no request materialises the rows of
a whole dataset.

Modules, in request order: server (DIALS' capacity: worker slots, rendering time, nginx's 504
and gzip), routes (URL table, pipeline), auth, context (workspace and clock), params
(filters; pgregex for PostgreSQL's regular expressions), cursors and keyset (pagination),
levels and resources (key spaces and rows), handlers (views), thirdparty (CAF, Run Registry,
brilcalc, OMS proxy), cache.
"""

from .routes import routes

__all__ = ["routes"]
