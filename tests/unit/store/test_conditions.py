"""The conditions table from OMS rows: column order, types, nulls, odd values."""

from __future__ import annotations

from datetime import UTC, datetime

import pyarrow as pa

from dialsflow.store.conditions import BASE, Rates, build_table


def test_columns_types_and_what_does_not_fit_is_null():
    rows = {
        3: {"fill_number": 9, "start_time": "2024-05-01T10:00:00Z", "pileup": 31,
            "prescale_index": 2, "prescale_name": "2p0E34", "beams_stable": True,
            "tob_ready": True, "bpix_ready": False},
        1: {"fill_number": "9", "start_time": 5, "pileup": "high", "prescale_index": True,
            "beams_stable": 1, "tob_ready": None},
    }
    table = build_table(7, rows, ("tob_ready", "bpix_ready"),
                        [Rates("HLT_ZeroBias_v*", {1: 50.0, 2: 51.0}, ("HLT_ZeroBias_v5",)),
                         Rates("HLT_None_v*", {}, ())],
                        [Rates("ZeroBias", {3: 12.5})])
    assert table.schema.names == [*BASE.names, "tob_ready", "bpix_ready",
                                  "hlt_rate_HLT_ZeroBias", "hlt_path_HLT_ZeroBias",
                                  "hlt_rate_HLT_None", "hlt_path_HLT_None",
                                  "dataset_rate_ZeroBias"]
    assert table.schema.field("start_time").type == pa.timestamp("us", tz="UTC")
    one, three = table.to_pylist()
    assert (one["run_number"], one["ls_number"], three["ls_number"]) == (7, 1, 3)
    assert [one[k] for k in ("fill_number", "start_time", "pileup", "prescale_index",
                             "beams_stable", "tob_ready", "bpix_ready")] == [None] * 7
    assert three["start_time"] == datetime(2024, 5, 1, 10, tzinfo=UTC)
    assert (three["pileup"], three["prescale_index"], three["bpix_ready"]) == (31.0, 2, False)
    assert (one["hlt_rate_HLT_ZeroBias"], three["hlt_rate_HLT_ZeroBias"]) == (50.0, None)
    assert one["hlt_path_HLT_ZeroBias"] == "HLT_ZeroBias_v5" and one["hlt_path_HLT_None"] is None
    assert (one["dataset_rate_ZeroBias"], three["dataset_rate_ZeroBias"]) == (None, 12.5)


def test_a_run_without_rows_is_an_empty_table_of_the_same_schema():
    table = build_table(7, {}, (), [Rates("HLT_ZeroBias_v*", {})], [])
    assert table.num_rows == 0
    assert table.schema.names == [*BASE.names, "hlt_rate_HLT_ZeroBias", "hlt_path_HLT_ZeroBias"]
