"""bench/breakdown.py runs against the aggregator's current interfaces (it had fallen behind
the Dedup protocol unnoticed) and measures what it says."""

from __future__ import annotations

from bench import breakdown


def test_a_small_breakdown_folds_every_series_and_measures_them() -> None:
    catalog = breakdown.bench_catalog(400)
    assert breakdown.aggregator_cpu(catalog, 400) > 0
    per_series, top = breakdown.aggregator_memory(catalog, 400)
    assert per_series > 100 and top  # a series key alone is more


def test_the_step_split_folds_every_measurement_of_its_envelopes() -> None:
    catalog = breakdown.bench_catalog(400)
    steps = breakdown.aggregator_stages(catalog, measurements=4_000, customers=400)  # raises unless all folded
    assert list(steps) == ["prepare", "process", "totals rows", "state log encoding"]
    assert all(value > 0 for value in steps.values()), steps


def test_judging_after_catalog_changes_accepts_each_new_customer() -> None:
    catalog = breakdown.bench_catalog(200)
    assert breakdown.judging_after_a_change(catalog, changes=3) > 0  # asserts each sign-up is accepted
    assert "signed-up-2" in catalog.customers
