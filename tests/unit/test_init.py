"""The package's public face: cheap to import, `fetch` and the error tree at the top."""

from __future__ import annotations

import subprocess
import sys

import pytest

import dialsflow
from dialsflow.pipeline.ingest import fetch


def test_import_loads_neither_arrow_nor_the_clients():
    code = ("import sys, dialsflow; "
            "print(sorted(m for m in ('pyarrow', 'cmsdials', 'requests', 'airflow') "
            "if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout
    assert out.strip() == "[]"


def test_fetch_and_errors_are_at_the_top():
    assert dialsflow.fetch is fetch
    assert issubclass(dialsflow.InputError, dialsflow.DialsflowError)
    assert issubclass(dialsflow.ServiceError, dialsflow.DialsflowError)
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        _ = dialsflow.nope
