"""Profiles of the world: its span, fills, run lengths and the tracker MEs (demo: a long
season of few, short runs; bench: long runs and large 2D maps)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from .basics import utc
from .entities import MonitorElement


def _bpix(me_id: int, kind: str, layer: int) -> MonitorElement:
    ladders = {1: 6, 2: 14, 3: 22, 4: 32}[layer]
    y_bin = 2 * (2 * ladders + 1)
    return MonitorElement(
        me_id=me_id,
        name=(
            f"PixelPhase1/Phase1_MechanicalView/PXBarrel/{kind}_per_SignedModuleCoord_"
            f"per_SignedLadderCoord_PXLayer_{layer}"
        ),
        dim=2, x_bin=72, x_min=-4.5, x_max=4.5,
        y_bin=y_bin, y_min=-(ladders + 0.5), y_max=ladders + 0.5,
        shape="bpix", mean_entries=3e6 if kind == "digi_occupancy" else 8e5,
    )


def _charge(me_id: int, where: str) -> MonitorElement:
    return MonitorElement(me_id, f"PixelPhase1/Tracks/{where}", 1, 100, 0.0, 80000.0,
                          shape="landau", mean_entries=4e4)


def _size(me_id: int, where: str) -> MonitorElement:
    return MonitorElement(me_id, f"PixelPhase1/Tracks/{where}", 1, 30, 0.0, 30.0,
                          shape="falling", mean_entries=4e4)


ZPHI = MonitorElement(96, "PixelPhase1/Tracks/PXBarrel/clusterposition_zphi_ontrack_PXLayer_1",
                      2, 300, -60.0, 60.0, 200, -3.2, 3.2, shape="band", mean_entries=2e5)
EB_OCCUPANCY = MonitorElement(3, "EcalBarrel/EBOccupancyTask/EBOT digi occupancy",
                              2, 360, 0.0, 360.0, 170, -85.0, 85.0, shape="flat",
                              mean_entries=2e6)

TRACKER_MES_DEMO: tuple[MonitorElement, ...] = (
    _charge(5, "PXBarrel/charge_PXLayer_1"),
    _charge(6, "PXBarrel/charge_PXLayer_2"),
    _size(9, "PXBarrel/size_PXLayer_1"),
    _charge(13, "PXForward/charge_PXDisk_+1"),
    _charge(16, "PXForward/charge_PXDisk_-1"),
    _bpix(15678, "clusters", 1),
    _bpix(15682, "digi_occupancy", 1),
    _bpix(15683, "digi_occupancy", 2),
)
TRACKER_MES_BENCH: tuple[MonitorElement, ...] = (
    _charge(5, "PXBarrel/charge_PXLayer_1"),
    _bpix(15682, "digi_occupancy", 1),
    _bpix(15685, "digi_occupancy", 4),
    ZPHI,
)
ECAL_MES: tuple[MonitorElement, ...] = (
    MonitorElement(1, "EcalBarrel/EBOccupancyTask/EBOT DCC entries", 1, 36, 9.0, 45.0,
                   shape="flat", mean_entries=6e4),
    EB_OCCUPANCY,
)


@dataclass(frozen=True)
class Profile:
    name: str
    start: datetime
    days: int
    runs_per_fill: tuple[int, int]
    ls_median: float
    ls_sigma: float
    ls_clip: tuple[int, int]
    tracker_mes: tuple[MonitorElement, ...]
    fill_gap_hours: tuple[float, float] = (2.0, 7.0)
    big_run_ls: int = 0  # plant one run this long (realistic maximum), 0 = none
    non_stable_share: float = 0.5  # fills followed by a short run without stable beams


PROFILES: dict[str, Profile] = {
    # A long season of Run2024C with sparse fills (one every 2-5 days, 1-2 runs each): about
    # 50 short runs over 140 days, so certification arrives weeks to months after the runs
    # while the demo still ingests everything in about a minute.
    "demo": Profile("demo", utc("2024-04-16T06:00:00Z"), 140, (1, 2), 45.0, 0.6, (8, 160),
                    TRACKER_MES_DEMO, fill_gap_hours=(68.0, 124.0), non_stable_share=0.2),
    # Many LS and large 2D maps; ~100 runs in 12 days; one 2,400-LS run as in 2024E.
    "bench": Profile("bench", utc("2024-04-16T06:00:00Z"), 12, (2, 4), 110.0, 0.8, (50, 2400),
                     TRACKER_MES_BENCH, big_run_ls=2400),
}
