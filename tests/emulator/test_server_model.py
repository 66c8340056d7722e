"""DIALS' server model as a client meets it: worker slots, rendering time, nginx's 504, gzip,
the 30 s page cache (dialsflow_emulator/dials/server.py, docs/emulator.md "DIALS server
model").

Timings are scaled down: the gateway timeout is one or two seconds, and the rendering cost
per MB is chosen from the measured size of the page used, so the tests do not depend on the
shapes of the synthetic world.
"""

from __future__ import annotations

import time
import uuid
import zlib
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

from dialsflow_emulator.process import EmulatorProcess

from .test_dials_api import access_token

PATH = "th2/"


def page(**more: object) -> dict:
    """Parameters of a th2 page of some hundred kB; a unique (ignored) parameter gives each
    call its own URL, so no test meets another's page in the 30 s page cache."""
    return {"page_size": 20, "u": uuid.uuid4().hex, **more}


@pytest.fixture(scope="module")
def emu() -> Iterator[EmulatorProcess]:
    with EmulatorProcess("--gateway-timeout-s", "2") as emu:
        yield emu


@pytest.fixture(scope="module")
def headers(emu: EmulatorProcess) -> dict[str, str]:
    return {"Authorization": f"Bearer {access_token(emu)}"}


@pytest.fixture(autouse=True)
def fresh(emu: EmulatorProcess) -> Iterator[None]:
    """Each test starts with idle workers, zero counters and the defaults it changes."""
    settle(emu)
    emu.set_server(workers=15, gateway_timeout_s=2, ms_per_mb=0, base_ms=0, gzip=True)
    emu.reset_stats()
    yield
    settle(emu)


def settle(emu: EmulatorProcess) -> None:
    deadline = time.monotonic() + 15
    while emu.stats()["dials_server"]["busy_workers"] and time.monotonic() < deadline:
        time.sleep(0.1)


def get(emu: EmulatorProcess, headers: dict, path: str, params: dict,
        **extra: str) -> tuple[requests.Response, float]:
    t0 = time.monotonic()
    r = requests.get(f"{emu.url}/api/v1/{path}", params=params, headers={**headers, **extra},
                     timeout=30)
    return r, time.monotonic() - t0


def ms_per_mb(emu: EmulatorProcess, headers: dict, seconds: float) -> float:
    """The cost per MB that makes a `page()` take `seconds` to render."""
    r, _ = get(emu, headers, PATH, page())
    assert r.status_code == 200
    return seconds * 1000 / (len(r.content) / 1e6)


def server_stats(emu: EmulatorProcess) -> dict:
    return emu.stats()["dials_server"]


# --------------------------------------------------------------------------- gateway timeout


def test_a_page_too_slow_to_render_is_nginx_504_every_time(emu, headers) -> None:
    emu.set_server(gateway_timeout_s=1, ms_per_mb=ms_per_mb(emu, headers, 3.0))
    params = page()
    for _ in range(2):  # not a transient: the same page fails the same way
        r, took = get(emu, headers, PATH, params)
        assert r.status_code == 504
        assert r.headers["Content-Type"] == "text/html"
        assert "<title>504 Gateway Time-out</title>" in r.text and "nginx" in r.text
        assert 0.9 < took < 2.0  # at the gateway timeout, not when rendering would end
    settle(emu)
    stats = server_stats(emu)
    assert stats["gateway_timeouts"] == 2 and stats["worker_kills"] == 2
    assert stats["cache_hits"] == 0  # a killed render never reaches the page cache


def test_a_small_page_is_served(emu, headers) -> None:
    emu.set_server(gateway_timeout_s=1, ms_per_mb=ms_per_mb(emu, headers, 3.0))
    r, took = get(emu, headers, PATH, page(page_size=1))  # a twentieth: ~0.15 s
    assert r.status_code == 200 and len(r.json()["results"]) == 1
    assert took < 0.9


# --------------------------------------------------------------------------- worker slots


def test_worker_slots_limit_concurrency(emu, headers) -> None:
    emu.set_server(workers=2, gateway_timeout_s=10, ms_per_mb=ms_per_mb(emu, headers, 1.0))

    def one(i: int) -> tuple[int, float]:
        r, took = get(emu, headers, PATH, page())
        return r.status_code, took

    with ThreadPoolExecutor(3) as pool:
        results = list(pool.map(one, range(3)))
    assert [status for status, _ in results] == [200, 200, 200]
    times = sorted(took for _, took in results)
    assert times[1] < 1.5 < times[2]  # two render at once, the third waits for one
    stats = server_stats(emu)
    assert stats["queued"] == 1 and stats["max_queue_wait_s"] > 0.7


def test_waiting_for_a_worker_counts_towards_the_gateway_timeout(emu, headers) -> None:
    emu.set_server(workers=1, gateway_timeout_s=1, ms_per_mb=ms_per_mb(emu, headers, 0.7))

    def one(i: int) -> tuple[int, float]:
        time.sleep(0.1 * i)  # arrive in order
        r, took = get(emu, headers, PATH, page())
        return r.status_code, took

    with ThreadPoolExecutor(3) as pool:
        (first, t1), (second, t2), (third, t3) = pool.map(one, range(3))
    assert first == 200 and t1 < 1.0
    assert (second, third) == (504, 504)  # 0.6 s in the queue + 0.7 s of rendering > 1 s
    assert 0.9 < t2 < 1.5 and 0.9 < t3 < 1.5
    stats = server_stats(emu)
    assert stats["gateway_timeouts"] == 2 and stats["timed_out_in_queue"] == 1
    assert stats["busy_workers"] == 1  # the worker renders on for nobody


def test_the_worker_renders_on_after_nginx_gave_up(emu, headers) -> None:
    """A 504 does not free the worker: the page is still rendered (and cached) when it
    takes less than gunicorn's timeout; a request behind it waits for it."""
    emu.set_server(workers=1, gateway_timeout_s=2, ms_per_mb=ms_per_mb(emu, headers, 1.2))
    slow_page = page()
    with ThreadPoolExecutor(2) as pool:
        blocker = pool.submit(get, emu, headers, PATH, page())
        time.sleep(0.1)
        slow = pool.submit(get, emu, headers, PATH, slow_page)
        assert blocker.result()[0].status_code == 200
        r, took = slow.result()
    assert r.status_code == 504 and took < 2.5  # 1.1 s queued + 1.2 s rendering > 2 s
    small, took = get(emu, headers, PATH, page(page_size=1))
    assert small.status_code == 200 and took > 0.15  # waited for the abandoned render
    retry, took = get(emu, headers, PATH, slow_page)
    assert retry.status_code == 200 and took < 0.5  # it finished and was cached meanwhile


# --------------------------------------------------------------------------- page cache


def test_a_cached_page_costs_no_render_time_and_the_clock_is_part_of_its_key(
        emu, headers) -> None:
    emu.set_server(ms_per_mb=ms_per_mb(emu, headers, 0.6))
    emu.reset_stats()
    params = page()
    r, cold = get(emu, headers, PATH, params)
    assert r.status_code == 200 and cold > 0.5
    again, warm = get(emu, headers, PATH, params)
    assert again.content == r.content and warm < 0.3
    later = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() + 86400 * 400))
    _, moved = get(emu, headers, PATH, params, **{"X-Emulator-Now": later})
    assert moved > 0.5  # another world clock: rendered anew
    _, other_header = get(emu, headers, PATH, params, Workspace="tracker")
    assert other_header > 0.5  # Django varies on the Workspace header as sent
    stats = server_stats(emu)
    assert stats["cache_hits"] == 1 and stats["rendered"] == 3


# --------------------------------------------------------------------------- gzip


def _wire(emu: EmulatorProcess, headers: dict, path: str, params: dict,
          **extra: str) -> tuple[requests.Response, bytes]:
    r = requests.get(f"{emu.url}/api/v1/{path}", params=params, headers={**headers, **extra},
                     timeout=30, stream=True)
    return r, r.raw.read(decode_content=False)


def _nginx_gzip(body: bytes) -> bytes:
    """gzip level 1 (nginx's default gzip_comp_level), 32 kB window, memory level 8."""
    packer = zlib.compressobj(1, zlib.DEFLATED, 16 + 15, 8)
    return packer.compress(body) + packer.flush()


def test_json_is_gzipped_like_nginx_does(emu, headers) -> None:
    params = page()
    plain, body = _wire(emu, headers, PATH, params, **{"Accept-Encoding": "identity"})
    assert plain.headers["Content-Length"] == str(len(body))
    assert "Content-Encoding" not in plain.headers
    assert plain.headers["Vary"] == "Accept-Encoding"
    packed, wire = _wire(emu, headers, PATH, params)  # requests asks for gzip by default
    assert packed.headers["Content-Encoding"] == "gzip"
    assert packed.headers["Vary"] == "Accept-Encoding"
    assert "Content-Length" not in packed.headers  # nginx streams it: chunked
    assert packed.headers["Transfer-Encoding"] == "chunked"
    assert wire == _nginx_gzip(body) and len(wire) < len(body) / 3
    assert zlib.decompress(wire, 16 + 15) == body
    assert server_stats(emu)["gzipped"] == 1


def test_which_answers_nginx_compresses(emu, headers) -> None:
    def encoding(path: str, params: dict | None = None, **extra: str) -> tuple[int, str | None]:
        r, _ = _wire(emu, headers, path, params or {}, **extra)
        return r.status_code, r.headers.get("Content-Encoding")

    assert encoding("run/", Workspace="nope") == (404, "gzip")  # JSON 404 and 403: yes
    r, _ = _wire(emu, {}, "run/", {})
    assert (r.status_code, r.headers.get("Content-Encoding")) == (403, "gzip")
    assert encoding("no-such-route/") == (404, "gzip")  # Django's HTML 404 page: yes
    assert encoding("run/", {"run_number": "x"}) == (400, None)  # other statuses: no
    assert encoding("mes/", {"me__regex": "(?P<x>a)"}) == (500, None)
    emu.set_server(gateway_timeout_s=0.5, ms_per_mb=ms_per_mb(emu, headers, 2.0))
    assert encoding(PATH, page()) == (504, None)  # nginx's own error page: no


def test_gzip_can_be_switched_off(emu, headers) -> None:
    assert emu.set_server(gzip=False)["gzip"] is False
    r, wire = _wire(emu, headers, PATH, page())
    assert "Content-Encoding" not in r.headers and "Vary" not in r.headers
    assert r.headers["Content-Length"] == str(len(wire))


# --------------------------------------------------------------------------- control API


def test_server_settings_through_the_control_api(emu) -> None:
    assert emu.set_server(workers=4, gateway_timeout_s=1.5, ms_per_mb=200, base_ms=30) == {
        "workers": 4, "gateway_timeout_s": 1.5, "ms_per_mb": 200.0, "base_ms": 30.0,
        "gzip": True}
    assert emu.server()["workers"] == 4
    for bad in ({"workers": 0}, {"workers": 1.5}, {"ms_per_mb": -1}, {"gzip": "yes"},
                {"gateway_timeout_s": "30"}, {"threads": 2}):
        r = requests.put(f"{emu.url}/_emulator/server", json=bad, timeout=10)
        assert r.status_code == 400 and r.json()["detail"], bad
    assert emu.server()["workers"] == 4  # a refused change changes nothing


def test_defaults_are_production_capacity_with_instant_rendering() -> None:
    with EmulatorProcess() as fresh_emu:
        assert fresh_emu.server() == {"workers": 15, "gateway_timeout_s": 30.0,
                                      "ms_per_mb": 0.0, "base_ms": 0.0, "gzip": True}
        stats = fresh_emu.stats()["dials_server"]
        assert stats["busy_workers"] == 0 and stats["gateway_timeouts"] == 0
