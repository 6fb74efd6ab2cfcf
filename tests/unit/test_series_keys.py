"""shared.series_keys: one text per series state and per id, read back into its parts."""

from __future__ import annotations

from datetime import UTC, datetime

from shared.series_keys import SEP, TIMELINE, SeriesKey, dedup_key, parse_series_table_key, series_table_key


def test_a_period_key_reads_back_into_its_parts() -> None:
    key = series_table_key("acme", "calls", "region=eu", datetime(2026, 3, 1, tzinfo=UTC))
    parsed = parse_series_table_key(key)
    assert parsed == SeriesKey("acme", "calls", "region=eu", "2026-03-01T00:00:00Z")
    assert parsed.text == key and not parsed.is_timeline


def test_a_timeline_key_and_an_empty_series() -> None:
    key = series_table_key("acme", "level", "", None)
    assert key == f"acme{SEP}level{SEP}{SEP}{TIMELINE}"
    assert SeriesKey.parse(key).is_timeline and SeriesKey.parse(key).series == ""


def test_ids_are_keyed_by_customer_and_meter() -> None:
    assert dedup_key("acme", "calls", "id-1") == f"acme{SEP}calls{SEP}id-1"
