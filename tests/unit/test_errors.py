"""One-line messages of many causes."""

from __future__ import annotations

from dialsflow.errors import first_causes


def test_the_first_causes_then_how_many_more() -> None:
    causes = [f"run {n}: HTTP 500" for n in range(1, 6)]
    assert first_causes(causes[:3]) == "run 1: HTTP 500; run 2: HTTP 500; run 3: HTTP 500"
    assert first_causes(causes) == (
        "run 1: HTTP 500; run 2: HTTP 500; run 3: HTTP 500 (and 2 more)")
    assert first_causes(causes, 1, rest="see the report") == (
        "run 1: HTTP 500 (and 4 more, see the report)")
    assert first_causes([]) == ""
