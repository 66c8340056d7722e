"""Run selections: both written forms, membership, bounds and the text given back."""

from __future__ import annotations

import pytest

from dialsflow.config.runs import RunSelection
from dialsflow.errors import InputError


def test_a_range_contains_its_bounds_and_nothing_outside():
    sel = RunSelection.parse(" 380000-380002 ")
    assert sel == RunSelection(380000, 380002)
    assert [r in sel for r in (379999, 380000, 380001, 380002, 380003)] == \
        [False, True, True, True, False]
    assert list(sel) == [380000, 380001, 380002]
    assert sel.bounds == (380000, 380002) and sel.text == "380000-380002"


def test_a_list_contains_only_its_runs_and_is_bounded_by_them():
    sel = RunSelection.parse("380007,380001, 380003")
    assert sel.listed == frozenset({380001, 380003, 380007})
    assert 380002 not in sel and 380003 in sel and "380003" not in sel
    assert sel.bounds == (380001, 380007) and list(sel) == [380001, 380003, 380007]
    assert str(sel) == "380001,380003,380007"
    assert RunSelection.parse(sel.text) == sel


def test_no_text_means_every_run():
    assert RunSelection.parse(None) is None


@pytest.mark.parametrize("text", ["", "abc", "5-3", "0-4", "1,-2", "1-2-3", ","])
def test_unusable_text_is_one_input_error(text):
    with pytest.raises(InputError) as info:
        RunSelection.parse(text)
    assert "\n" not in str(info.value) and "FIRST-LAST" in str(info.value)


def test_of_refuses_an_empty_selection():
    with pytest.raises(ValueError):
        RunSelection.of([])
