"""The page's data are Airflow's to give: no token, no data; a viewer sees the night."""

from __future__ import annotations

import requests

from .conftest import JOB, Night, Server

STATUS = "/dials-ingestion/api/status"


def test_anonymous_gets_no_data_and_the_page_sends_to_login(server: Server) -> None:
    got = requests.get(server.url + STATUS, timeout=30)
    assert got.status_code == 401 and JOB not in got.text
    forged = requests.get(server.url + STATUS, headers={"Authorization": "Bearer x.y.z"},
                          timeout=30)
    assert forged.status_code in (401, 403) and JOB not in forged.text
    page = requests.get(server.url + "/dials-ingestion/", allow_redirects=False, timeout=30)
    assert page.status_code == 303 and "/auth/login" in page.headers["location"]


def test_a_viewer_sees_the_failed_unit_linked_to_its_log(server: Server, night: Night) -> None:
    token = server.token("viewer")
    got = requests.get(server.url + STATUS, headers={"Authorization": f"Bearer {token}"},
                       timeout=30)
    assert got.status_code == 200, got.text
    job = next(j for j in got.json()["jobs"] if j["job"] == JOB)
    assert job["disk_bytes"] > 0
    night_model = job["nights"][0]
    assert night_model["run_id"] == night.run_id and night_model["verdict"] == "failed"
    matrix = night_model["matrix"]
    failed = {(unit["label"], cell["log"]) for row in matrix["rows"]
              for unit, cell in zip(matrix["units"], row["cells"], strict=True)
              if cell and cell["status"] == "failed"}
    ((label, log),) = failed  # one ME failed, for every run due tonight
    assert label.endswith("PXLayer_2")
    assert log.startswith("/dags/dials_ingest/runs/") and "/tasks/ingest/mapped/" in log
    statuses = {cell["status"] for row in matrix["rows"] for cell in row["cells"] if cell}
    assert {"complete", "failed", "waiting", "excluded"} <= statuses
    assert any(r["status"] == "excluded" and r["reason"] for r in matrix["reasons"])
