"""The FastAPI app behind the "DIALS ingestion" page, mounted by the api-server.

Airflow serves plugin apps without its authentication, so every route here asks Airflow's
own auth manager: the UI's JWT (cookie or bearer) must be valid and allowed to read the
runs of `dials_ingest`. The page is static HTML+JS; the data come from `status.page_model`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import quote

from fastapi import Depends, FastAPI, HTTPException, Request
from fastapi.responses import FileResponse, ORJSONResponse, RedirectResponse

from dialsflow.airflow.ui import status

DAG_ID = "dials_ingest"
MAPPED_TASK = "ingest"
URL_PREFIX = "/dials-ingestion"
PAGE = Path(__file__).with_name("static") / "index.html"


async def reader(request: Request) -> Any:
    """The caller, if Airflow's auth manager lets them read the DAG's runs (401/403
    otherwise)."""
    from airflow.api_fastapi.auth.managers.models.resource_details import (
        DagAccessEntity,
        DagDetails,
    )
    from airflow.api_fastapi.core_api.security import get_auth_manager, get_user

    user = await get_user(request, None, _bearer(request))
    if not get_auth_manager().is_authorized_dag(method="GET", access_entity=DagAccessEntity.RUN,
                                                details=DagDetails(id=DAG_ID), user=user):
        raise HTTPException(status_code=403, detail=f"not allowed to read {DAG_ID} runs")
    return user


def _bearer(request: Request) -> Any:
    from fastapi.security import HTTPAuthorizationCredentials

    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    return HTTPAuthorizationCredentials(scheme=scheme, credentials=token) if token else None


def log_links(ui_root: str = "") -> status.LogLink:
    """Failed units' task logs (under `ui_root`, the UI's path prefix): a unit's map index
    is its place in discover's return."""
    from airflow.utils.session import create_session

    from dialsflow.airflow.stored_xcom import stored_xcom

    cache: dict[str, dict[tuple[str, str, str], int]] = {}

    def indexes(run_id: str) -> dict[tuple[str, str, str], int]:
        if run_id not in cache:
            with create_session() as session:
                units = stored_xcom(session, DAG_ID, run_id, "discover", "return_value")
            cache[run_id] = {(u.get("job"), u.get("dataset"), u.get("me")): i
                             for i, u in enumerate(units or [])}
        return cache[run_id]

    def link(run_id: str, job: str, dataset: str, me: str) -> str | None:
        index = indexes(run_id).get((job, dataset, me))
        if index is None:
            return None
        return (f"{ui_root}/dags/{DAG_ID}/runs/{quote(run_id, safe='')}/tasks/{MAPPED_TASK}"
                f"/mapped/{index}")

    return link


def jobs() -> list[tuple[str, Path]]:
    from dialsflow.config.jobs import load_jobs

    return [(name, job.output) for name, job in load_jobs().items()]


def create_app() -> FastAPI:
    app = FastAPI(title="DIALS ingestion", docs_url=None, redoc_url=None, openapi_url=None)

    @app.get("/", include_in_schema=False)
    async def page(request: Request) -> Any:
        try:
            await reader(request)
        except HTTPException as err:
            if err.status_code != 401:
                raise
            from airflow.api_fastapi.core_api.security import get_auth_manager

            return RedirectResponse(get_auth_manager().get_url_login(
                next_url=str(request.url)), status_code=303)
        return FileResponse(PAGE, media_type="text/html")

    @app.get("/api/status", dependencies=[Depends(reader)])
    def page_data(request: Request, nights: int = 7) -> ORJSONResponse:
        from dialsflow.errors import DialsflowError

        try:
            selected = jobs()
        except DialsflowError as err:
            raise HTTPException(status_code=500, detail=str(err)) from err
        # mounted at <UI root>/dials-ingestion: the UI may live under a path ([api] base_url)
        ui_root = request.scope.get("root_path", "").removesuffix(URL_PREFIX)
        return ORJSONResponse(status.page_model(selected, log_links(ui_root),
                                                nights=max(1, min(nights, 60))))

    return app
