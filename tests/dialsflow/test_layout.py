"""Names become safe, reversible path components: nothing ever lands outside OUTDIR."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dialsflow.layout import (
    MAX_COMPONENT,
    UnitKey,
    UnsafeNameError,
    decode_name,
    encode_name,
    run_file,
)

HOSTILE = st.one_of(
    st.text(min_size=1, max_size=60),
    st.sampled_from(["..", ".", "/", "../../etc/passwd", "a/../../b", "\x00", "x\x00y", "~",
                     "PixelPhase1/Tracks/PXForward/charge_PXDisk_+1", "EBOT digi occupancy [1]",
                     "%2F", "%", "%%41"]),
    st.lists(st.sampled_from(["..", "/", "\x00", "a", ".", "%", " "]), min_size=1,
             max_size=12).map("".join),
)


@settings(max_examples=400, deadline=None, database=None)
@given(HOSTILE)
def test_encoding_is_reversible_and_one_safe_component(name):
    try:
        enc = encode_name(name)
    except UnsafeNameError:  # refused only when too long for one path component
        assert len(name.encode()) * 3 > MAX_COMPONENT
        return
    assert decode_name(enc) == name
    assert "/" not in enc and "\x00" not in enc and enc not in (".", "..") and enc


@settings(max_examples=300, deadline=None, database=None)
@given(ws=HOSTILE, dataset=HOSTILE, me=HOSTILE, run=st.integers(min_value=0, max_value=10**9))
def test_run_files_stay_under_outdir(ws, dataset, me, run):
    outdir = Path("/srv/out")
    try:
        path = run_file(outdir, UnitKey(ws, dataset, me), run)
    except UnsafeNameError:  # too long to store: refused, nothing written anywhere
        assert max(len(n.encode()) for n in (ws, dataset, me)) * 3 > MAX_COMPONENT
        return
    resolved = Path(os.path.normpath(path))
    assert resolved.parent.parent.parent.parent == outdir
    assert resolved.name == f"run_{run}.parquet"


@given(st.text(min_size=1, max_size=30), st.text(min_size=1, max_size=30))
@settings(max_examples=200, deadline=None, database=None)
def test_distinct_names_never_collide(a, b):
    if a != b:
        assert encode_name(a) != encode_name(b)


def test_unusable_names_are_refused():
    with pytest.raises(UnsafeNameError):
        encode_name("")
    with pytest.raises(UnsafeNameError):
        encode_name("/" * 200)
    for bad in ("..", "a/b", "%zz", "%2f"):
        with pytest.raises(UnsafeNameError):
            decode_name(bad)
