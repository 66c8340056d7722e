"""The jobs file's optional `export` key: strict like every other key, resolved like output."""

from __future__ import annotations

import pytest

from dialsflow.config.jobs import ExportTarget, load_jobs

from .test_jobs import environment, error_of, good_job, write_jobs  # noqa: F401 - fixture


def test_export_is_optional_and_resolves_like_output(tmp_path):
    jobs = load_jobs(write_jobs(tmp_path, good_job(), good_job(
        name="exported", export={"to": "exports/pixel"}), good_job(
        name="absolute", export={"to": str(tmp_path / "abs"), "format": "dialstools"})))
    assert jobs["pixel"].export is None
    assert jobs["exported"].export == ExportTarget(tmp_path / "out" / "exports" / "pixel",
                                                   "dialstools")
    assert jobs["absolute"].export == ExportTarget(tmp_path / "abs", "dialstools")


@pytest.mark.parametrize(("export", "problem"), [
    ("exports", "export: must be an object with the folder 'to' (and 'format'), not a string"),
    ({}, "export.to: is required"),
    ({"to": 7}, "export.to: must be a folder path (string), not an integer"),
    ({"to": "x", "format": "csv"}, "export.format: must be one of dialstools, not 'csv'"),
    ({"to": "x", "when": "daily"}, "export: unknown key 'when'; allowed: format, to"),
    ({"to": "s3://bucket/x"}, "export.to: 's3://bucket/x': only local paths"),
])
def test_bad_export_is_one_clear_line(tmp_path, export, problem):
    message = error_of(write_jobs(tmp_path, good_job(export=export)))
    assert f"job 'pixel', {problem}" in message
