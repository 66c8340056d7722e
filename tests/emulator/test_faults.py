"""Fault injection as a client sees it: resets, truncated bodies, 5xx, 429, latency."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
import requests
from requests.adapters import HTTPAdapter
from urllib3.util import Retry

from dialsflow_emulator.process import EmulatorProcess

PATH = "/CAF/certification/Collisions24/"


@pytest.fixture(scope="module")
def faulty() -> Iterator[EmulatorProcess]:
    with EmulatorProcess("--fault-rate", "1", "--fault-max-consecutive", "3") as emu:
        yield emu


def _outcome(url: str) -> str:
    try:
        r = requests.get(url, timeout=10)
        r.content  # noqa: B018 - read the whole body
        return str(r.status_code)
    except requests.exceptions.ChunkedEncodingError:
        return "truncated"
    except requests.exceptions.ConnectionError:
        return "reset"


@pytest.mark.parametrize("kind,expected", [("reset", "reset"), ("truncate", "truncated"),
                                           ("503", "503"), ("504", "504"), ("502", "502")])
def test_each_fault_kind_reaches_the_client(faulty, kind, expected):
    faulty.set_faults(fault_kinds=[kind], fault_rate=1.0)
    url = f"{faulty.url}{PATH}?kind={kind}"
    outcomes = [_outcome(url) for _ in range(4)]
    # At most three faults in a row for one URL: the fourth attempt gets through.
    assert outcomes[:3] == [expected] * 3
    assert outcomes[3] == "200"


def test_throttling_says_when_to_come_back(faulty):
    faulty.set_faults(fault_kinds=["429"], fault_rate=1.0)
    r = requests.get(f"{faulty.url}{PATH}?kind=429", timeout=10)
    assert r.status_code == 429
    assert r.headers["Retry-After"] == "1"


def test_keycloak_and_control_api_are_never_faulted(faulty):
    faulty.set_faults(fault_kinds=["503"], fault_rate=1.0)
    faulty.reset_stats()
    conn = faulty.connections()["dials_default"]
    r = requests.post(f"{faulty.url}/auth/realms/cern/api-access/token", data={
        "grant_type": "client_credentials", "client_id": conn["login"],
        "client_secret": conn["password"]}, timeout=10)
    assert r.status_code == 200
    assert faulty.stats()["faults"] == {}


def test_faults_are_counted(faulty):
    faulty.reset_stats()
    faulty.set_faults(fault_kinds=["502"], fault_rate=1.0)
    _outcome(f"{faulty.url}{PATH}?counted=1")
    assert faulty.stats()["faults"] == {"502": 1}


def test_same_seed_same_faults():
    """The fault pattern depends on seed and URL only, not on timing."""
    urls = [f"{PATH}?n={i}" for i in range(40)]

    def pattern(seed: str) -> list[str]:
        with EmulatorProcess("--fault-rate", "0.3", "--fault-kinds", "503,504",
                             "--seed", seed) as emu:
            return [_outcome(emu.url + u) for u in urls]

    first, second, other = pattern("5"), pattern("5"), pattern("6")
    assert first == second
    assert first != other
    assert 3 <= sum(o in ("503", "504") for o in first) <= 25


def test_a_retrying_client_always_gets_through():
    retry = Retry(total=6, backoff_factor=0.01, status_forcelist=(502, 503, 504),
                  allowed_methods=None, raise_on_status=False)
    with EmulatorProcess("--fault-rate", "0.5") as emu, requests.Session() as s:
        s.mount("http://", HTTPAdapter(max_retries=retry))
        statuses = set()
        for i in range(30):
            for _ in range(4):  # urllib3 does not retry a body cut after the headers: we must
                try:
                    statuses.add(s.get(f"{emu.url}{PATH}?r={i}", timeout=10).status_code)
                    break
                except requests.exceptions.ChunkedEncodingError:
                    continue
            else:
                pytest.fail(f"request {i} never got through")
        assert statuses == {200}
        assert emu.stats()["faults"]


def test_latency_is_added_to_data_requests():
    with EmulatorProcess("--latency-ms", "300") as emu:
        t0 = time.monotonic()
        requests.get(f"{emu.url}{PATH}", timeout=10)
        slow = time.monotonic() - t0
        t0 = time.monotonic()
        requests.get(f"{emu.url}/_emulator/health", timeout=10)
        fast = time.monotonic() - t0
    assert slow >= 0.3 > fast


def test_faults_act_in_front_of_the_dials_server_model(faulty):
    """A faulted DIALS request never reaches one of DIALS' workers (docs/emulator.md)."""
    faulty.set_faults(fault_kinds=["503"], fault_rate=1.0)
    faulty.reset_stats()
    r = requests.get(f"{faulty.url}/api/v1/run/?front=1", timeout=10)
    assert r.status_code == 503 and "nginx" in r.text
    stats = faulty.stats()
    assert stats["faults"] == {"503": 1}
    assert stats["dials_server"]["requests"] == 0
