"""Lumisection ranges: merged, sorted, and short enough for a log line."""

from __future__ import annotations

from dialsflow.lumis import format_ranges, to_ranges


def test_ranges_merge_consecutive_numbers_in_order():
    assert to_ranges({7, 1, 3, 2, 9, 8}) == [[1, 3], [7, 9]]
    assert to_ranges([]) == []


def test_long_range_lists_are_cut_and_say_how_many_were_left_out():
    assert format_ranges({1, 2, 3, 7}) == "1-3,7"
    text = format_ranges(range(0, 400, 2), limit=40)
    assert len(text) <= 40 and text.endswith(")") and "…(+" in text
