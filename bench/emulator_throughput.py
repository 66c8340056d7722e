"""How fast the emulator serves DIALS th1/th2 pages (it must never be the bottleneck).

Starts one emulator (bench profile) in its own process, so it has one core to itself, and
reads th1/th2 pages over one keep-alive connection, following `next` links, without parsing
JSON. Two passes per ME: cold (histograms generated and rendered) and warm (cached rows and
page bodies, as DIALS' own 30 s cache serves repeated URLs). Prints MB/s of JSON.

    .venv/bin/python bench/emulator_throughput.py [--pages 20]
"""

from __future__ import annotations

import argparse
import time
from urllib.parse import parse_qs, urlsplit

import requests

from dialsflow_emulator.process import EmulatorProcess

CASES = [
    # (label, endpoint, ME, page_size)
    ("th1 charge 100 bins", "th1", "PixelPhase1/Tracks/PXBarrel/charge_PXLayer_1", 500),
    ("th2 BPix L1 72x26", "th2", "PixelPhase1/Phase1_MechanicalView/PXBarrel/"
     "digi_occupancy_per_SignedModuleCoord_per_SignedLadderCoord_PXLayer_1", 500),
    ("th2 EB 360x170", "th2", "EcalBarrel/EBOccupancyTask/EBOT digi occupancy", 100),
]
WORKSPACE = {"EcalBarrel": "ecal"}


def _token(emu: EmulatorProcess) -> str:
    conn = emu.connections()["dials_default"]
    r = requests.post(f"{emu.url}/auth/realms/cern/api-access/token", data={
        "grant_type": "client_credentials", "client_id": conn["login"],
        "client_secret": conn["password"], "audience": conn["extra"]["audience"]}, timeout=30)
    r.raise_for_status()
    return r.json()["access_token"]


def _read_pages(session: requests.Session, url: str, params: dict, pages: int) -> tuple[int, int]:
    """Follow `next` for up to `pages` pages; return (bytes, pages read)."""
    total, n = 0, 0
    while n < pages:
        r = session.get(url, params=params, timeout=120)
        r.raise_for_status()
        body = r.content
        total += len(body)
        n += 1
        tail = body[:400]
        marker = tail.find(b'"next":"')
        if marker < 0:
            break
        end = tail.find(b'"', marker + 8)
        token = parse_qs(urlsplit(tail[marker + 8:end].decode()).query).get("next_token")
        if not token:
            break
        params = {**params, "next_token": token[0]}
    return total, n


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--pages", type=int, default=20, help="pages per ME and pass")
    args = ap.parse_args()
    with EmulatorProcess(profile="bench", seed=1) as emu, requests.Session() as s:
        s.headers["Authorization"] = f"Bearer {_token(emu)}"
        print(f"emulator {emu.url} (bench profile), {args.pages} pages per ME and pass")
        print(f"{'case':<22} {'pass':<5} {'pages':>5} {'MB':>8} {'s':>7} {'MB/s':>8}")
        for label, endpoint, me, page_size in CASES:
            ws = WORKSPACE.get(me.split("/")[0], "tracker")
            s.headers["Workspace"] = ws
            url = f"{emu.url}/api/v1/{endpoint}/"
            params = {"me": me, "page_size": page_size}
            for name in ("cold", "warm"):
                t0 = time.perf_counter()
                nbytes, pages = _read_pages(s, url, params, args.pages)
                dt = time.perf_counter() - t0
                mb = nbytes / 1e6
                print(f"{label:<22} {name:<5} {pages:>5} {mb:>8.1f} {dt:>7.2f} {mb / dt:>8.1f}")


if __name__ == "__main__":
    main()
