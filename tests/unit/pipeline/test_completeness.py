"""`dialsflow check-lumis` against the emulator: it finds exactly the planted gaps."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import orjson
import pytest

from dialsflow.lumis import format_ranges
from dialsflow.pipeline.completeness import RunCheck, overlaps
from dialsflow.store.layout import UnitKey, run_file
from dialsflow_emulator.process import EmulatorProcess

from .test_ingest import CHARGE, ZB, dialsflow, write_json

EXPRESS = "/StreamExpress/Run2024C-Express-v1/DQMIO"


def env_for(emu: EmulatorProcess, *, dbs: dict | None = None,
            drop: tuple[str, ...] = ()) -> dict[str, str]:
    conns = emu.connections()
    if dbs is not None:
        conns["dbs_default"].update(dbs)
    env = {k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW_CONN_")}
    for conn_id, conn in conns.items():
        if conn_id not in drop:
            env[f"AIRFLOW_CONN_{conn_id.upper()}"] = orjson.dumps(conn).decode()
    return env


def ls_set(ranges: list[list[int]]) -> set[int]:
    return {n for first, last in ranges for n in range(first, last + 1)}


def dataset_runs(truth: dict, dataset: str) -> dict[int, dict]:
    ds = next(d for d in truth["datasets"] if d["dataset"] == dataset)
    return {int(run): info for run, info in ds["runs"].items()}


class World:
    """The runs this module fetches and checks, picked from the truth."""

    def __init__(self, truth: dict) -> None:
        self.ids = {d["dataset"]: d["dataset_id"] for d in truth["datasets"]}
        self.runs = {name: dataset_runs(truth, name) for name in (ZB, EXPRESS)}
        planted: dict[tuple[str, int], set[int]] = {}
        by_id = {v: k for k, v in self.ids.items()}
        for p in truth["planted"]["dials_missing_ls"]:
            name = by_id[p["dataset_id"]]
            if name in self.runs and self.runs[name].get(p["run"], {}).get("in_dbs"):
                planted.setdefault((name, p["run"]), set()).update(p["ls"])
        self.planted = planted
        self.invalid = truth["planted"]["invalid_files"]
        self.copy_error = next(p for p in truth["planted"]["dials_missing_ls"]
                               if p.get("cause") == "COPY_ERROR")
        zb = self.runs[ZB]
        self.pending = min(r for r, v in zb.items() if v["in_dbs"] and not v["in_dials"])
        self.clean = sorted(r for r in zb if all(
            self.runs[d].get(r, {}).get("in_dials") and
            self.runs[d][r]["dbs_valid_ls"] == self.runs[d][r]["dials_ls"] for d in (ZB, EXPRESS))
        )[:2]
        self.checked = sorted({run for _, run in planted} | {self.pending, *self.clean}
                              | {f["run"] for f in self.invalid})

    def _difference(self, runs: list[int], have: str, lack: str
                    ) -> dict[tuple[str, int], set[int]]:
        """Per (dataset, run) in DBS: the LS in the truth's `have` ranges but not in `lack`."""
        out = {}
        for name, runs_of in self.runs.items():
            for run in runs:
                info = runs_of.get(run)
                if info and info["in_dbs"] and (left := ls_set(info[have]) - ls_set(info[lack])):
                    out[(name, run)] = left
        return out

    def beyond_dbs(self, runs: list[int]) -> dict[tuple[str, int], set[int]]:
        """DIALS − DBS: rows of files DBS has invalidated since (DIALS never looks at
        validity), which parquet then holds beyond DBS."""
        return self._difference(runs, "dials_ls", "dbs_valid_ls")

    def expected(self, runs: list[int]) -> dict[tuple[str, int], set[int]]:
        """DBS − DIALS per (dataset, run) with a gap: what parquet must lack."""
        return self._difference(runs, "dbs_valid_ls", "dials_ls")


@pytest.fixture(scope="module")
def world(truth) -> World:
    return World(truth)


@pytest.fixture(scope="module")
def fetched(emulator, world, tmp_path_factory) -> dict[str, Path]:
    """The charge ME of both datasets for the chosen runs, fetched by `dialsflow fetch`."""
    d = tmp_path_factory.mktemp("check")
    files = {"datasets": write_json(d / "datasets.json", ["ZeroBias", "StreamExpress"]),
             "mes": write_json(d / "mes.json", ["charge_PXLayer_1$"]),
             "zb": write_json(d / "zb.json", [r"^/ZeroBias/"]), "out": d / "out"}
    r = dialsflow(["fetch", "-d", str(files["datasets"]), "-m", str(files["mes"]), "-o",
                   str(files["out"]), "--runs", ",".join(map(str, world.checked))],
                  env_for(emulator))
    assert r.returncode == 0, r.stderr
    return files


def check(files: dict[str, Path], env: dict[str, str], runs: list[int], *extra: str,
          out: Path | None = None):
    return dialsflow(["check-lumis", "-d", str(files["datasets"]), "-o",
                      str(out or files["out"]), "--runs", ",".join(map(str, runs)), *extra],
                     env, timeout=120)


def gaps(report: dict, field: str) -> dict[tuple[str, int], set[int]]:
    return {(u["dataset"], r["run"]): ls_set(r[field])
            for u in report["units"] for r in u["runs"] if r[field]}


def test_reports_exactly_the_planted_gaps(emulator, world, fetched):
    r = check(fetched, env_for(emulator), world.checked, "--with-dials", "--json")
    assert r.returncode == 1, r.stderr
    report = orjson.loads(r.stdout)
    expected = world.expected(world.checked)
    # What the emulator planted: single LS, the COPY_ERROR file, a run DIALS has not yet.
    pending = ls_set(world.runs[ZB][world.pending]["dbs_valid_ls"])
    assert expected == {**world.planted, (ZB, world.pending): pending}
    ce_run = world.copy_error["run"]
    assert set(world.copy_error["ls"]) <= expected[(ZB, ce_run)]
    assert gaps(report, "missing_in_parquet") == expected
    assert gaps(report, "upstream_gap") == expected  # all of it is DIALS' doing...
    assert gaps(report, "ours") == {}  # ...none ours
    invalid = {(ZB if f["dataset_id"] == world.ids[ZB] else EXPRESS, f["run"])
               for f in world.invalid}
    assert gaps(report, "extra") == world.beyond_dbs(world.checked)
    assert set(gaps(report, "extra")) <= invalid
    assert {(u["dataset"], r["run"]) for u in report["units"] for r in u["runs"]
            if not r["ok"]} == set(expected) | set(world.beyond_dbs(world.checked))
    assert report["complete"] is False and report["with_dials"] is True
    assert report["summary"]["ls"]["missing_in_parquet"] == sum(map(len, expected.values()))
    for u in report["units"]:
        assert u["me"] == f"PixelPhase1/Tracks/PXBarrel/{CHARGE.rsplit('/', 1)[1]}"
        for run in u["runs"]:
            info = world.runs[u["dataset"]][run["run"]]
            assert ls_set(run["dbs"]) == ls_set(info["dbs_valid_ls"])
            assert ls_set(run["dials"]) == ls_set(info["dials_ls"])
            missing = len(expected.get((u["dataset"], run["run"]), ()))
            assert run["dials_missing_fraction"] == pytest.approx(missing / len(
                ls_set(info["dbs_valid_ls"])))


def test_table_names_each_gap_once_and_json_agrees(emulator, world, fetched):
    env = env_for(emulator)
    table = check(fetched, env, world.checked)
    assert table.returncode == 1, table.stderr
    as_json = check(fetched, env, world.checked, "--json")
    assert as_json.returncode == 1
    report = orjson.loads(as_json.stdout)  # stdout is the report and nothing else
    assert report["with_dials"] is False
    assert all(r["ours"] is None and r["dials"] is None
               for u in report["units"] for r in u["runs"])
    expected = world.expected(world.checked)
    assert gaps(report, "missing_in_parquet") == expected
    beyond = world.beyond_dbs(world.checked)
    lines = [line for line in table.stdout.splitlines() if line.startswith("/")]
    assert len(lines) == len(set(expected) | set(beyond))
    for line in lines:
        cells = line.split()
        dataset, me, run, dbs, parquet, missing = cells[:6]
        gap = expected.get((dataset, int(run)), set())
        over = beyond.get((dataset, int(run)), set())
        assert me == "charge_PXLayer_1" and int(missing) == len(gap)
        assert int(dbs) - int(parquet) == len(gap) - len(over)
        assert (f"extra {format_ranges(sorted(over))}" in line) == bool(over)
    summary = table.stdout.splitlines()[-1]
    assert summary.startswith("INCOMPLETE: 2 dataset × ME units")
    assert f"missing in parquet {sum(map(len, expected.values()))} " in summary
    # The seed's second check: Express and PromptReco of the same runs share every LS.
    assert "overlap: " in table.stdout and report["overlaps"][0]["datasets"] == sorted(
        [EXPRESS, ZB])


def test_complete_runs_exit_0(emulator, world, fetched):
    r = check(fetched, env_for(emulator), world.clean, "--with-dials")
    assert r.returncode == 0, r.stdout + r.stderr
    assert r.stdout.splitlines()[-1].startswith(
        f"complete: 2 dataset × ME units, {2 * len(world.clean)} runs checked, 0 with issues")


def test_deleted_parquet_file_is_ours(emulator, world, fetched, tmp_path):
    out = tmp_path / "out"
    shutil.copytree(fetched["out"], out)
    run = world.clean[0]
    run_file(out, UnitKey("tracker", ZB, CHARGE), run).unlink()
    r = check(fetched, env_for(emulator), world.clean, "--with-dials", "--json", out=out)
    assert r.returncode == 1, r.stderr
    report = orjson.loads(r.stdout)
    everything = ls_set(world.runs[ZB][run]["dbs_valid_ls"])
    assert gaps(report, "missing_in_parquet") == {(ZB, run): everything}
    assert gaps(report, "ours") == {(ZB, run): everything}  # DIALS has it: our failure
    assert gaps(report, "upstream_gap") == {}


def test_pattern_selects_units_on_disk(emulator, world, fetched):
    r = dialsflow(["check-lumis", "-d", str(fetched["zb"]), "-m", str(fetched["mes"]), "-o",
                   str(fetched["out"]), "--runs", ",".join(map(str, world.checked)), "--json"],
                  env_for(emulator))
    assert r.returncode == 1, r.stderr
    report = orjson.loads(r.stdout)
    assert [u["dataset"] for u in report["units"]] == [ZB]
    assert gaps(report, "missing_in_parquet") == {
        k: v for k, v in world.expected(world.checked).items() if k[0] == ZB}


def test_transient_dbs_and_dials_faults_give_the_same_report(emulator, world, fetched):
    emulator.reset_stats()
    clean = check(fetched, env_for(emulator), world.checked, "--with-dials", "--json")
    clean_dbs = _dbs_requests(emulator.stats())
    with EmulatorProcess("--fault-rate", "0.3") as faulty:
        r = check(fetched, env_for(faulty), world.checked, "--with-dials", "--json")
        stats = faulty.stats()
    assert r.returncode == 1, r.stderr
    assert orjson.loads(r.stdout) == orjson.loads(clean.stdout)
    assert sum(stats["faults"].values()) > 0
    assert _dbs_requests(stats) > clean_dbs  # failed DBS requests were retried


def _dbs_requests(stats: dict) -> int:
    return sum(n for path, n in stats["requests"].items() if path.startswith("/dbs/"))


@pytest.mark.parametrize("case", ["no dbs connection", "dataset pattern matches nothing",
                                  "me pattern matches nothing", "unreachable dbs",
                                  "no such outdir", "runs match nothing"])
def test_bad_input_is_one_line_exit_2(emulator, world, fetched, tmp_path, case):
    env = env_for(emulator)
    args = ["check-lumis", "-d", str(fetched["datasets"]), "-o", str(fetched["out"])]
    if case == "no dbs connection":
        env = env_for(emulator, drop=("dbs_default",))
    elif case == "dataset pattern matches nothing":
        args[2] = str(write_json(tmp_path / "d.json", ["/NoSuchPD/"]))
    elif case == "me pattern matches nothing":
        args += ["-m", str(write_json(tmp_path / "m.json", ["no_such_me"]))]
    elif case == "unreachable dbs":
        env = env_for(emulator, dbs={"host": "http://127.0.0.1:9/dbs/prod/global/DBSReader"})
    elif case == "no such outdir":
        args[4] = str(tmp_path / "nowhere")
    elif case == "runs match nothing":
        args += ["--runs", "1-10"]
    r = dialsflow(args, env, timeout=60)
    assert r.returncode == 2, r.stdout + r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("dialsflow: error: "), r.stderr
    hint = {"no dbs connection": "AIRFLOW_CONN_DBS_DEFAULT",
            "dataset pattern matches nothing": "'/NoSuchPD/' matches nothing on disk",
            "me pattern matches nothing": "'no_such_me' matches no ME on disk",
            "unreachable dbs": "cannot reach DBS at http://127.0.0.1:9/",
            "no such outdir": "does not exist", "runs match nothing": "nothing to check"}[case]
    assert hint in lines[0]


def test_overlaps_and_derived_sets():
    key = UnitKey("tracker", ZB, CHARGE)
    c = RunCheck(key, 1, dbs=frozenset(range(1, 11)), parquet=frozenset({1, 2, 3, 11}),
                 dials=frozenset(range(1, 6)))
    assert c.missing_in_parquet == frozenset(range(4, 11))
    assert c.ours == {4, 5} and c.upstream_gap == frozenset(range(6, 11))
    assert c.extra == {11} and not c.ok and c.dials_missing_fraction == 0.5
    assert RunCheck(key, 1, dbs=frozenset({1}), parquet=frozenset({1})).ours is None
    found = overlaps({"A": {1: frozenset({1, 2}), 2: frozenset({5})},
                      "B": {1: frozenset({2, 3}), 2: frozenset({6})}, "C": {}})
    assert [(o.datasets, o.lumis) for o in found] == [(("A", "B"), {1: frozenset({2})})]
