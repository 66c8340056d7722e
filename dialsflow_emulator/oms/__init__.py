"""CMS OMS aggregation API twin: `/agg/api/v1/{runs,lumisections,fills}` and the trigger
resources `hltpathinfo`, `hltpathrates`, `datasetrates` (§6.4) as omsapi 0.9.8.1 sees them.

Contract: docs/reference/oms.md (§1 endpoints, §2 query parameters, §3 date-times,
§4 JSON:API-like shapes, §5 auth, §6 attribute tables). Every row is derived from the
`World` at the request's clock: a run, lumisection or fill exists once it has started, and so
do a run's paths and the per-LS rates of its started LS.

Choices where the reference is unsure (marked [guess] there):
- an attribute unknown to the resource in `filter`, `sort` or `fields` is a 400 with a
  JSON:API `errors` body (§4.3), so a typo never silently widens a query;
- `CT` means "contains" (substring for strings, element for lists); `LIKE` takes `%`/`_`
  and applies to strings only; list attributes (`components`) match if any element does;
- `include=data_only` drops `links` and the top-level `meta`;
- lumisection `id` is "<run>_<ls>", fill `id` the fill number as text; cumulative
  lumisection lumis are per run; luminosities are in pb^-1 and follow the DIALS twin's
  brilcalc model (`World.lumi_per_ls`), so OMS and DIALS agree on every run.

Speed: lumisection rows are built once per run (values do not depend on the clock, only
how many of them exist does) and kept as tuples; ended runs and fills are cached too, and
`run_number` / `fill_number` filters select runs before any lumisection row is touched.

Modules: attributes (the tables), rows (world -> rows), resources (collections), query
(parameters and selection), routes (documents and HTTP).
"""

from .routes import query_response, routes

__all__ = ["query_response", "routes"]
