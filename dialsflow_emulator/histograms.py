"""Histogram values: a deterministic function of (seed, dataset, run, LS, ME).

Shapes are plausible, not physics: a Landau-like charge spectrum, a falling cluster-size
spectrum, BPix maps with the structurally empty module-0 columns and ladder-0 rows
(docs/reference/dials.md §4 "synthetic-data hints"), a z-phi band, flat ECAL occupancy. Counts are
Poisson-like: expected value plus Gaussian noise of width sqrt(expected), rounded and
clipped at zero, so bins are integers stored as floats as DQMIO TH1F/TH2F content is. The
noise comes from one fixed pool at a per-(seed, dataset, run, LS, ME) offset: vectorised
arithmetic, about ten times cheaper than drawing Poisson numbers for a 360×170 map.
Some lumisections are empty (entries = 0), as consumers see in real data.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

from .world.basics import stable_int
from .world.entities import MonitorElement


def entries_for(seed: int, dataset_id: int, run: int, ls: int, me: MonitorElement) -> int:
    """ROOT GetEntries(): cheap to compute, so `entries__gte` filters need no histogram."""
    h = stable_int("entries", seed, dataset_id, run, ls, me.me_id)
    if h % 97 == 0:
        return 0  # empty LS (e.g. beam lost): happens, consumers must cope
    spread = 0.7 + (h % 10_000) / 16_000  # 0.7 .. 1.325
    return int(me.mean_entries * spread)


def histogram(seed: int, dataset_id: int, run: int, ls: int, me: MonitorElement) -> np.ndarray:
    """Bin contents: shape (x_bin,) for 1D, (y_bin, x_bin) for 2D (data[iy][ix])."""
    entries = entries_for(seed, dataset_id, run, ls, me)
    template = _template(me)
    if entries == 0:
        return np.zeros_like(template)
    # ~1 % of fills land in under/overflow, so sum(data) < entries as in ROOT.
    expected = template * (entries * 0.99 / template.sum())
    pool = _noise_pool()
    start = stable_int("hist", seed, dataset_id, run, ls, me.me_id) % (pool.size - template.size)
    noise = pool[start:start + template.size].reshape(template.shape)
    counts = np.rint(expected + np.sqrt(expected) * noise)
    return np.maximum(counts, 0.0, out=counts)


NOISE_POOL_SIZE = 1 << 20


@lru_cache(maxsize=1)
def _noise_pool() -> np.ndarray:
    """Standard normal numbers, the same on every machine (PCG64 with a fixed seed)."""
    return np.random.default_rng(20240416).standard_normal(NOISE_POOL_SIZE)


@lru_cache(maxsize=64)
def _template(me: MonitorElement) -> np.ndarray:
    x = (np.arange(me.x_bin) + 0.5) / me.x_bin
    if me.dim == 1:
        if me.shape == "landau":
            z = (x - 0.22) / 0.06
            shape = np.exp(-0.5 * (z + np.exp(-z)))
        elif me.shape == "falling":
            shape = np.exp(-x * 8.0)
        else:
            shape = np.ones_like(x)
        return (shape / shape.sum()).astype(np.float64)
    y = (np.arange(me.y_bin) + 0.5) / me.y_bin
    xx, yy = np.meshgrid(x, y)  # (y_bin, x_bin)
    if me.shape == "bpix":
        shape = 1.0 + 2.0 * np.exp(-((xx - 0.5) ** 2) / 0.05)  # more hits at small |z|
        mid_x, mid_y = me.x_bin // 2, me.y_bin // 2
        shape[:, mid_x - 4: mid_x + 4] = 0.0  # module 0 does not exist
        shape[mid_y - 1: mid_y + 1, :] = 0.0  # ladder 0 does not exist
    elif me.shape == "band":
        shape = np.exp(-((yy - 0.5) ** 2) / 0.08) * (1.0 + 0.3 * np.cos(xx * 12.0))
    else:
        shape = 1.0 + 0.1 * np.sin(xx * 40.0) * np.cos(yy * 9.0)
    return (shape / shape.sum()).astype(np.float64)
