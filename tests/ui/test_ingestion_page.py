"""The "DIALS ingestion" page on one demo night with a planted failure.

Its data are Airflow's to give: no token, no data; a viewer sees the night. In a real
browser (Debian's Chromium driven by Playwright): log in as an operator would, open
"DIALS ingestion" from Airflow's navigation, find the matrix with the failure, follow the
failed cell to its task log and read the cause there without scrolling, on a full-HD
screen. One night and one api-server serve every test here (one file: one xdist worker).
The page's screenshot in docs/img/ comes from here (DIALSFLOW_SCREENSHOTS=1 rewrites it).
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from .conftest import JOB, USERS, Night, Server

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
SCREENSHOT = Path(__file__).resolve().parents[2] / "docs" / "img" / "ingestion-page.png"
CAUSE = "DIALS answered HTTP 500"
STATUS = "/dials-ingestion/api/status"

# Where `text` is drawn: "whole" when an occurrence lies inside the window and inside
# every scrolling box around it, "cut" when one is at least partly on screen but clipped
# (a long line cut at the right edge), "hidden" when all are off screen, None when absent.
WHERE = """text => {
  const walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
  let best = null;
  for (let node = walker.nextNode(); node; node = walker.nextNode()) {
    const at = node.data.indexOf(text);
    if (at < 0) continue;
    const range = document.createRange();
    range.setStart(node, at);
    range.setEnd(node, at + text.length);
    const r = range.getBoundingClientRect();
    const boxes = [{left: 0, top: 0, right: innerWidth, bottom: innerHeight}];
    for (let el = node.parentElement; el; el = el.parentElement) {
      const style = getComputedStyle(el);
      if (/(auto|scroll|hidden)/.test(style.overflowX + style.overflowY)) {
        boxes.push(el.getBoundingClientRect());
      }
    }
    if (boxes.every(b => r.left >= b.left - 1 && r.right <= b.right + 1
                         && r.top >= b.top - 1 && r.bottom <= b.bottom + 1)) return "whole";
    const shows = boxes.every(b => r.left < b.right && r.top >= b.top - 1
                                   && r.bottom <= b.bottom + 1);
    best = shows ? "cut" : (best === "cut" ? "cut" : "hidden");
  }
  return best;
}"""


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
    # the verdict in the run's note too, as the grid shows it
    run = requests.get(f"{server.url}/api/v2/dags/dials_ingest/dagRuns/{night.run_id}",
                       headers={"Authorization": f"Bearer {token}"}, timeout=30)
    assert run.status_code == 200, run.text
    assert run.json()["note"].startswith(
        f"**{JOB}**: failed — ingestion failed for ZeroBias/Run2024C-PromptReco-v1 × "
        "digi_occupancy_per_SignedModuleCoord_per_SignedLadderCoord_PXLayer_2 "), run.json()


@pytest.fixture(scope="module")
def log_page(server: Server, night: Night) -> Iterator[Any]:
    """The failed cell's task log, reached from the login page through the matrix."""
    from playwright.sync_api import expect, sync_playwright

    if not os.access(CHROMIUM, os.X_OK):
        pytest.fail(f"{CHROMIUM} missing: `make browser` installs Debian's chromium",
                    pytrace=False)
    name, password = USERS["admin"]
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        try:
            page = browser.new_page(viewport={"width": 1920, "height": 1080})
            page.goto(server.url + "/")
            page.get_by_label("Username").fill(name)
            page.get_by_label("Password").fill(password)
            page.get_by_role("button", name="Sign in").click()
            page.get_by_role("link", name="DIALS ingestion").click()
            job = page.frame_locator("iframe").locator(f'section[data-job="{JOB}"]')
            expect(job.locator("h2")).to_contain_text("on disk")
            expect(job.locator("button.night").first).to_contain_text(
                f"{night.run_id}: failed")
            failed = job.locator('[data-status="failed"]')
            expect(failed.first).to_be_visible()
            assert {failed.nth(i).get_attribute("data-me").rsplit("_", 1)[-1]
                    for i in range(failed.count())} == {"2"}
            expect(job.locator('[data-status="complete"]').first).to_be_visible()
            expect(job.locator('[data-status="excluded"]').first).to_be_attached()
            # the night's first failure line whole on screen: short names, wrapped
            first = job.locator("ul.failures li").first
            expect(first).to_contain_text("ingestion failed for ZeroBias/Run2024C")
            frame = next(f for f in page.frames if f is not page.main_frame)
            assert frame.evaluate(WHERE, first.inner_text()) == "whole"
            if os.environ.get("DIALSFLOW_SCREENSHOTS"):
                page.screenshot(path=str(SCREENSHOT),
                                clip={"x": 0, "y": 0, "width": 1100, "height": 720})

            failed.first.click()
            page.wait_for_url("**/tasks/ingest/mapped/*")
            expect(page.get_by_text(CAUSE).first).to_be_attached(timeout=30_000)
            yield page
        finally:
            browser.close()


def test_the_failed_cell_opens_its_log_with_the_cause_on_screen(log_page: Any) -> None:
    """The failed unit's own log (not another map index), the cause in the visible lines."""
    header = log_page.get_by_text("PXLayer_2").first
    assert header.is_visible()
    assert log_page.evaluate(WHERE, CAUSE) in ("whole", "cut")


def test_the_cause_reads_without_scrolling_sideways(log_page: Any) -> None:
    assert log_page.evaluate(WHERE, CAUSE) == "whole"


def test_the_run_page_shows_the_verdict_note(log_page: Any, server: Server,
                                            night: Night) -> None:
    """The note the listener wrote, rendered on the night's run page."""
    from playwright.sync_api import expect

    log_page.goto(f"{server.url}/dags/dials_ingest/runs/{night.run_id}")
    expect(log_page.get_by_text("ingestion failed for ZeroBias/Run2024C").first).to_be_visible(
        timeout=30_000)


def test_a_viewer_can_read_but_not_trigger_or_clear(server: Server, night: Night) -> None:
    """The simple auth manager's VIEWER role: what the page needs, nothing it may not do."""
    auth = {"Authorization": f"Bearer {server.token('viewer')}"}
    runs = f"{server.url}/api/v2/dags/dials_ingest/dagRuns"
    trigger = requests.post(runs, json={"logical_date": None, "conf": {}}, headers=auth,
                            timeout=30)
    assert trigger.status_code == 403, trigger.text
    clear = requests.post(f"{runs}/{night.run_id}/clear", json={"dry_run": False},
                          headers=auth, timeout=30)
    assert clear.status_code == 403, clear.text
    listed = requests.get(runs, headers=auth, timeout=30)
    assert listed.status_code == 200 and listed.json()["total_entries"] == 1
