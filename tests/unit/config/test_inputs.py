"""Seed-style pattern files: what is accepted, and one line for what is not."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest

from dialsflow.config.inputs import load_patterns
from dialsflow.errors import InputError


def write(tmp_path: Path, value: object, name: str = "p.json") -> Path:
    path = tmp_path / name
    path.write_bytes(orjson.dumps(value) if not isinstance(value, bytes) else value)
    return path


def test_a_list_of_patterns_loads_once_each_in_order(tmp_path: Path):
    path = write(tmp_path, ["/ZeroBias/Run2024.*", "/Express/.*", "/ZeroBias/Run2024.*"])
    assert load_patterns(path, "datasets") == ["/ZeroBias/Run2024.*", "/Express/.*"]


@pytest.mark.parametrize(("value", "expected"), [
    ({"a": 1}, "must be a JSON list of non-empty strings"),
    (["ok", ""], "must be a JSON list of non-empty strings"),
    ([], "is an empty list: name at least one dataset"),
    (["(unclosed"], "invalid regex in datasets: '(unclosed'"),
    (b"[1,", "is not valid JSON"),
])
def test_unusable_files_give_one_line(tmp_path: Path, value, expected):
    with pytest.raises(InputError) as info:
        load_patterns(write(tmp_path, value), "datasets")
    assert expected in str(info.value) and "\n" not in str(info.value)


def test_missing_file_and_directory_are_named(tmp_path: Path):
    with pytest.raises(InputError, match="datasets file not found"):
        load_patterns(tmp_path / "nope.json", "datasets")
    with pytest.raises(InputError, match="datasets file is a directory"):
        load_patterns(tmp_path, "datasets")
