"""Names become safe, reversible path components: nothing ever lands outside OUTDIR."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dialsflow.store.layout import (
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


# ---- every path dialsflow derives from a name: real writes, jobs files, report names ------

LONG = st.text(alphabet=st.characters(codec="utf-8", exclude_categories=("Cs",)), min_size=60,
               max_size=300)


def _files_under(folder: Path) -> list[Path]:
    return [Path(root) / f for root, _, files in os.walk(folder) for f in files]


@settings(max_examples=150, deadline=None, database=None)
@given(ws=HOSTILE, dataset=st.one_of(HOSTILE, LONG), me=st.one_of(HOSTILE, LONG),
       run=st.integers(min_value=0, max_value=10**9))
def test_parquet_and_manifest_writes_stay_under_outdir(ws, dataset, me, run):
    """Real files: a run's parquet (published through its temporary file), its manifest
    entry and the unit's lock land in OUTDIR/<3 components>/, OUTDIR/_manifest/<3>/ and
    OUTDIR/_locks/<2>/, or the name is refused before anything is written."""
    import tempfile

    from dialsflow.store import atomic
    from dialsflow.store.layout import LOCKS_DIR, MANIFEST_DIR
    from dialsflow.store.locks import unit_lock
    from dialsflow.store.manifest import Manifest, RunEntry

    with tempfile.TemporaryDirectory() as top:
        outdir = Path(top) / "out"
        key = UnitKey(ws, dataset, me)
        try:
            target = run_file(outdir, key, run)
        except UnsafeNameError:
            assert not Path(top, "out").exists()
            return
        assert atomic.temp_path(target).parent == target.parent
        with unit_lock(outdir, key):
            atomic.write_bytes(target, b"PAR1")
            Manifest(outdir).record(RunEntry(ws, dataset, 1, me, 2, 1, run, 0, [], 4,
                                             "0" * 64, "2024-04-25T00:00:00Z", True))
        assert Manifest(outdir).is_complete(key, run)
        files = _files_under(Path(top))
        assert len(files) == 3  # parquet, manifest entry, lock
        for f in files:
            rel = f.relative_to(outdir).parts  # raises if the file is outside OUTDIR
            assert ".." not in rel and len(rel) == (5 if rel[0] == MANIFEST_DIR else 4)
            assert rel[0] in (MANIFEST_DIR, LOCKS_DIR) or rel[-1] == target.name


@settings(max_examples=300, deadline=None, database=None)
@given(st.one_of(HOSTILE, LONG))
def test_report_names_are_one_component(run_id):
    """DAG run ids are user input (REST trigger): the completeness report's file name
    derived from one never leaves OUTDIR/_reports."""
    from dialsflow.store.layout import REPORTS_DIR, safe_run_id

    name = f"{safe_run_id(run_id)}.json"
    assert "/" not in name and "\x00" not in name and name not in (".", "..")
    base = Path("/srv/out") / REPORTS_DIR
    assert Path(os.path.normpath(base / name)).parent == base


CONFIG_TEXT = st.one_of(HOSTILE, LONG, st.sampled_from(
    ["/abs/out", "../../etc", "~", "~nobody-here/x", "rel/out", "a\x00b", "s3://bucket/x",
     "x" * 300, "./.", "out/../../.."]))


@pytest.fixture(scope="module", autouse=True)
def output_root_set(tmp_path_factory):
    """Relative job outputs need $DIALSFLOW_OUTPUT_ROOT (there is no default)."""
    with pytest.MonkeyPatch.context() as env:
        env.setenv("DIALSFLOW_OUTPUT_ROOT", str(tmp_path_factory.mktemp("output")))
        yield


@settings(max_examples=300, deadline=None, database=None)
@given(name=CONFIG_TEXT, workspace=CONFIG_TEXT, output=CONFIG_TEXT, datasets=CONFIG_TEXT)
def test_hostile_jobs_files_fail_with_one_line_or_stay_safe(tmp_path_factory, name,
                                                             workspace, output, datasets):
    """A jobs file with hostile names and paths is refused with an `InputError` naming the
    file (no traceback of another kind), or gives a job whose name and workspace are plain names;
    an output without '..' parts stays under its root (absolute outputs are the operator's
    choice, by design)."""
    import orjson

    from dialsflow.config.jobs import load_jobs, output_root
    from dialsflow.errors import InputError

    folder = tmp_path_factory.mktemp("jobs")
    (folder / "mes.json").write_bytes(b'["charge$"]')
    (folder / "ds.json").write_bytes(b'["/ZeroBias/"]')
    for field, value in (("name", name), ("workspace", workspace), ("output", output),
                         ("datasets_file", datasets)):
        good = {"name": "ok", "workspace": "tracker", "output": "out",
                "datasets_file": "ds.json"}
        job = {**good, field: value, "mes_file": "mes.json",
               "completeness_tolerance": 0.1}
        path = folder / "jobs.json"
        path.write_bytes(orjson.dumps({"jobs": [job]}))
        try:
            loaded = next(iter(load_jobs(path).values()))
        except InputError as exc:
            assert str(exc).startswith(f"jobs file {path}")
            continue
        assert re.fullmatch(r"[A-Za-z0-9_-]+", loaded.name)
        assert re.fullmatch(r"[A-Za-z0-9_-]+", loaded.workspace)
        assert loaded.output.is_absolute()
        if field == "output" and not Path(value).is_absolute() and ".." not in \
                Path(value).parts and not value.startswith("~"):
            assert loaded.output.is_relative_to(output_root().resolve()), value
