"""Per-LS OMS conditions of runs against the OMS twin over HTTP, through omsapi directly and
DIALS' oms-proxy, compared with what unmodified omsapi reads from the same OMS."""

from __future__ import annotations

from collections.abc import Iterator
from fnmatch import fnmatchcase

import omsapi
import orjson
import pyarrow.parquet as pq
import pytest

from dialsflow.cli import main
from dialsflow.config.conditions import ConditionsSpec
from dialsflow.config.connections import OmsSettings
from dialsflow.pipeline.conditions import (
    check_conditions,
    runs_lacking_conditions,
    write_conditions,
)
from dialsflow.services import oms_conditions
from dialsflow.services.oms import LUMI_UNITS
from dialsflow.store import conditions as store
from dialsflow.store.layout import conditions_file, conditions_manifest_file
from dialsflow.store.manifest import file_sha256
from dialsflow_emulator.cli import connection_env
from dialsflow_emulator.process import EmulatorProcess
from dialsflow_emulator.world import build_world, iso, utc

from ...clients import connection, oms

VIAS = ["direct", "dials"]
BASE = [f.name for f in store.BASE]


@pytest.fixture(scope="module")
def reference(emulator: EmulatorProcess):
    """Unmodified omsapi on the twin, one page of everything: what OMS serves."""
    settings = OmsSettings.from_connection(connection(emulator, "oms_default"))
    api = omsapi.OMSAPI(api_url=settings.api_url, verbose=False, cert_verify=settings.verify)
    omsapi.cern_api_url = settings.token_url
    api.auth_oidc(settings.client_id, settings.client_secret, audience=settings.audience)

    def query(resource: str, **filters: object) -> list[dict]:
        q = api.query(resource)
        for attribute, value in filters.items():
            q.filter(attribute, value)
        q.paginate(page=1, per_page=100000)
        return q.data().json()["data"]

    return query


@pytest.fixture(scope="module")
def runs(truth: dict) -> dict[str, int]:
    """A run OMS lacks LS of, one whose first LS has null lumi, one with null DCS bits."""
    planted = truth["planted"]
    nulls = planted["oms_null_ls"]
    return {"gap": int(min(planted["oms_missing_ls"])),
            "null_lumi": int(min(r for r, c in nulls.items() if "lumi" in c.values())),
            "null_dcs": int(min(r for r, c in nulls.items() if "dcs" in c.values()))}


def pb(value: float | None, row: dict, name: str) -> float | None:
    unit = ((row.get("meta") or {}).get("row") or {}).get(name, {}).get("units", "pb^{-1}")
    return None if value is None else value * LUMI_UNITS[unit]


@pytest.mark.parametrize("via", VIAS)
def test_tables_hold_what_oms_serves(emulator, truth, reference, runs, tmp_path, via):
    report = write_conditions(oms(emulator, via), tmp_path, runs.values(), ConditionsSpec())
    assert sorted(e.run for e in report.written) == sorted(runs.values())
    assert not (report.failed or report.ongoing or report.unknown)
    for run in runs.values():
        path = conditions_file(tmp_path, run)
        table = pq.read_table(path)
        lumis = reference("lumisections", run_number=run)
        by_ls = {r["attributes"]["lumisection_number"]: r for r in lumis}
        bits = [k for k in lumis[0]["attributes"] if k.endswith("_ready")]
        assert table.column_names == [*BASE, *bits, "hlt_rate_HLT_ZeroBias",
                                      "hlt_path_HLT_ZeroBias", "dataset_rate_ZeroBias"]
        assert table.column("ls_number").to_pylist() == sorted(by_ls)  # OMS' LS, no others
        assert set(table.column("run_number").to_pylist()) == {run}
        paths = [r["attributes"]["path_name"] for r in reference("hltpathinfo", run_number=run)
                 if fnmatchcase(r["attributes"]["path_name"], "HLT_ZeroBias_v*")]
        assert len(paths) == 1
        hlt = {r["attributes"]["first_lumisection_number"]: r["attributes"]["rate"]
               for r in reference("hltpathrates", run_number=run, path_name=paths[0])}
        pd = {r["attributes"]["first_lumisection_number"]: r["attributes"]["rate"]
              for r in reference("datasetrates", run_number=run, dataset_name="ZeroBias")}
        for row in table.to_pylist():
            item = by_ls[row["ls_number"]]
            a = item["attributes"]
            for name in ("fill_number", "pileup", "physics_flag", "beams_stable", "cms_active",
                         "prescale_index", "prescale_name", *bits):
                assert row[name] == a[name], (run, row["ls_number"], name)
            for name in ("start_time", "end_time"):
                assert row[name] == utc(a[name])
            for name in ("delivered_lumi_per_lumisection", "recorded_lumi_per_lumisection"):
                assert row[name] == pytest.approx(pb(a[name], item, name))
            assert row["hlt_rate_HLT_ZeroBias"] == hlt.get(row["ls_number"])
            assert row["hlt_path_HLT_ZeroBias"] == paths[0]
            assert row["dataset_rate_ZeroBias"] == pd.get(row["ls_number"])
        meta = pq.read_metadata(path)
        assert [c.column_index for c in meta.row_group(0).sorting_columns] == [0, 1]
        footer = {k.decode(): v.decode() for k, v in meta.metadata.items()
                  if k.startswith(b"dialsflow.")}
        assert footer["dialsflow.conditions_version"] == "1"
        assert footer["dialsflow.lumi_unit"] == "pb^-1"
        assert orjson.loads(footer["dialsflow.conditions_spec"]) == {
            "hlt_paths": ["HLT_ZeroBias_v*"], "datasets": ["ZeroBias"]}
        assert footer["dialsflow.oms_source"].startswith("http://127.0.0.1:")
        entry = store.entry(tmp_path, run)
        assert (entry.rows, entry.bytes, entry.sha256) == (
            table.num_rows, path.stat().st_size, file_sha256(path))
        assert entry.ls_numbers == set(by_ls)
    # the twin's planted gaps and nulls are what the tables show
    planted = truth["planted"]
    gap = pq.read_table(conditions_file(tmp_path, runs["gap"]), columns=["ls_number"])
    assert not set(planted["oms_missing_ls"][str(runs["gap"])]) & set(
        gap.column("ls_number").to_pylist())
    first = pq.read_table(conditions_file(tmp_path, runs["null_lumi"])).slice(0, 1).to_pylist()[0]
    assert first["ls_number"] == 1 and first["pileup"] is None
    assert first["recorded_lumi_per_lumisection"] is None
    (ls,) = [int(k) for k, v in planted["oms_null_ls"][str(runs["null_dcs"])].items()
             if v == "dcs"]
    dcs = next(r for r in pq.read_table(conditions_file(tmp_path, runs["null_dcs"])).to_pylist()
               if r["ls_number"] == ls)
    assert dcs["ls_number"] == ls and dcs["bpix_ready"] is None and dcs["ebp_ready"] is None


def test_both_ways_in_give_the_same_tables_over_pages(emulator, runs, tmp_path, monkeypatch):
    monkeypatch.setattr(oms_conditions, "LS_PAGE_LIMIT", 7)  # several pages per run
    run = runs["gap"]
    spec = ConditionsSpec(("HLT_ZeroBias*", "HLT_NoSuchPath_v*"), ("ZeroBias", "Muon0"))
    tables = []
    for via in VIAS:
        write_conditions(oms(emulator, via), tmp_path / via, [run], spec)
        tables.append(pq.read_table(conditions_file(tmp_path / via, run)))
    assert tables[0].num_rows > 3 * 7
    assert tables[0].select(tables[0].column_names[:-1]).equals(
        tables[1].select(tables[1].column_names[:-1]))
    t = tables[0].to_pylist()
    # two versioned ZeroBias paths match: rates summed, both named
    names = t[0]["hlt_path_HLT_ZeroBias_"].split(",")
    assert len(names) == 2 and all(n.startswith("HLT_ZeroBias") for n in names)
    assert {r["hlt_rate_HLT_NoSuchPath"] for r in t} == {None}
    assert {r["hlt_path_HLT_NoSuchPath"] for r in t} == {None}
    assert any(r["dataset_rate_Muon0"] for r in t)


def test_written_once_then_current_until_the_spec_changes(emulator, runs, tmp_path):
    client = oms(emulator, "direct")
    run = runs["null_dcs"]
    first = write_conditions(client, tmp_path, [run], ConditionsSpec())
    assert [e.run for e in first.written] == [run]
    stamp = conditions_manifest_file(tmp_path, run).read_bytes()
    again = write_conditions(client, tmp_path, [run], ConditionsSpec())
    assert (again.written, again.current) == ([], [run])
    assert conditions_manifest_file(tmp_path, run).read_bytes() == stamp
    assert [e.run for e in write_conditions(client, tmp_path, [run], ConditionsSpec(),
                                            force=True).written] == [run]
    other = ConditionsSpec((), ("ZeroBias",))
    assert [e.run for e in write_conditions(client, tmp_path, [run], other).written] == [run]
    assert pq.read_schema(conditions_file(tmp_path, run)).names[-1] == "dataset_rate_ZeroBias"
    assert not [p for p in conditions_file(tmp_path, run).parent.iterdir()
                if p.name.startswith(".")]


def test_map_ls_without_an_oms_row_are_reported(emulator, truth, runs, tmp_path):
    run = runs["gap"]
    write_conditions(oms(emulator, "dials"), tmp_path, [run], ConditionsSpec())
    n_ls = next(r["n_ls"] for r in truth["runs"] if r["run_number"] == run)
    (missing, check) = check_conditions(tmp_path, {run: range(1, n_ls + 1), 1: [1, 2]})
    assert missing.run == 1 and not missing.written
    assert check.written and sorted(check.without_oms_row) == \
        truth["planted"]["oms_missing_ls"][str(run)]
    assert check.to_json()["map_ls_without_oms_row"]
    assert runs_lacking_conditions(tmp_path) == []  # no maps under tmp_path


@pytest.fixture(scope="module")
def midrun() -> Iterator[EmulatorProcess]:
    """The demo world while its longest run is being taken."""
    run = max(build_world("demo", 1).runs, key=lambda r: r.n_ls)
    with EmulatorProcess("--now", iso(run.start + (run.end - run.start) / 2)) as emu:
        yield emu


def test_an_ongoing_run_is_not_written(midrun, tmp_path):
    truth = midrun.truth()
    now = utc(truth["now"])
    ongoing = next(r["run_number"] for r in truth["runs"]
                   if not r["ended"] and utc(r["start_time"]) <= now)
    ended = max(r["run_number"] for r in truth["runs"] if r["ended"])
    report = write_conditions(oms(midrun, "direct"), tmp_path, [ongoing, ended],
                              ConditionsSpec())
    assert report.ongoing == [ongoing] and [e.run for e in report.written] == [ended]
    assert not conditions_file(tmp_path, ongoing).exists()


# ---- dialsflow conditions ------------------------------------------------------------------


@pytest.fixture
def env(emulator, monkeypatch):
    for key, value in connection_env(emulator.host, emulator.port).items():
        monkeypatch.setenv(key, value)


def test_cli_writes_the_runs_of_a_range(env, truth, tmp_path, capsys):
    numbers = [r["run_number"] for r in truth["runs"] if r["ended"]][:3]
    out = tmp_path / "out"
    assert main(["conditions", "-o", str(out), "--runs", f"{numbers[0]}-{numbers[-1]}",
                 "--hlt-path", "HLT_IsoMu24_v*", "--dataset", "Muon0"]) == 0
    assert "3 runs written" in capsys.readouterr().out
    assert sorted(int(p.stem[4:]) for p in conditions_file(out, 1).parent.iterdir()) == numbers
    assert pq.read_schema(conditions_file(out, numbers[0])).names[-3:] == [
        "hlt_rate_HLT_IsoMu24", "hlt_path_HLT_IsoMu24", "dataset_rate_Muon0"]
    assert main(["conditions", "-o", str(out), "--runs", f"{numbers[0]},1"]) == 1
    assert "OMS has no run 1" in capsys.readouterr().err
