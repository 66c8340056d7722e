"""One time convention: aware UTC inside, one ISO text form outside."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

from dialsflow.times import iso, utc


def test_naive_and_offset_times_become_aware_utc():
    assert utc(datetime(2024, 4, 25, 3)) == datetime(2024, 4, 25, 3, tzinfo=UTC)
    cern = timezone(timedelta(hours=2))
    assert utc(datetime(2024, 4, 25, 5, tzinfo=cern)) == datetime(2024, 4, 25, 3, tzinfo=UTC)
    assert utc("2024-04-25 05:00:00+02:00") == datetime(2024, 4, 25, 3, tzinfo=UTC)
    assert utc("2024-04-25T03:00:00Z").tzinfo is not None


def test_the_text_form_round_trips_without_a_plus():
    text = iso(datetime(2024, 4, 25, 5, 6, 7, tzinfo=timezone(timedelta(hours=2))))
    assert text == "2024-04-25T03:06:07Z" and "+" not in text
    assert iso(utc(text)) == text
