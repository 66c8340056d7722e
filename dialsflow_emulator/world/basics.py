"""Shared helpers of the world: UTC timestamps, stable hashes, LS ranges."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime

LS_SECONDS = 23.31  # one lumisection, 2^18 LHC orbits


def utc(text: str) -> datetime:
    """Parse an ISO-8601 UTC timestamp ('Z' or offset; naive means UTC)."""
    value = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def iso(value: datetime) -> str:
    """Serialise like DIALS and OMS do: second resolution, UTC, trailing Z."""
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def stable_int(*parts: object, bits: int = 63) -> int:
    """A platform-independent hash of the parts, for seeding per-object randomness."""
    size = (bits + 7) // 8 + 1
    digest = hashlib.blake2b("\x1f".join(map(str, parts)).encode(), digest_size=size).digest()
    return int.from_bytes(digest, "big") >> (size * 8 - bits)


def ranges(numbers: tuple[int, ...] | list[int]) -> list[list[int]]:
    """Compress sorted LS numbers into inclusive [first, last] ranges."""
    out: list[list[int]] = []
    for n in numbers:
        if out and n == out[-1][1] + 1:
            out[-1][1] = n
        else:
            out.append([n, n])
    return out
