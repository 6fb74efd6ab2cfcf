"""The catalog keeps each customer's subscriptions in order as they are put and deleted:
"which subscription covers this instant" answers as a scan of every subscription would,
after any sequence of changes, without an index to rebuild."""

from __future__ import annotations

import sys
import threading
from datetime import UTC, datetime, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from shared.catalog import Catalog
from shared.models import Customer, Meter, PricePlan, Subscription
from shared.resolution import CatalogIndex

T0 = datetime(2026, 1, 1, tzinfo=UTC)
CUSTOMERS = ["a", "b", "c"]


def empty_catalog() -> Catalog:
    catalog = Catalog()
    catalog.put(PricePlan.model_validate({"name": "p", "period": "monthly", "metered_components": []}))
    for name in CUSTOMERS:
        catalog.put(Customer.model_validate({"name": name}))
    return catalog


def scanned(catalog: Catalog, customer: str, at: datetime) -> Subscription | None:
    """The answer by brute force: of every subscription covering `at`, the latest started."""
    covering = [s for s in catalog.subscriptions.values() if s.customer_name == customer and s.start_time <= at
                and (s.end_time is None or at < s.end_time)]
    return max(covering, key=lambda s: s.start_time, default=None)


def subscription(customer: str, start: int, length: int | None) -> Subscription:
    return Subscription(customer_name=customer, price_plan_name="p", start_time=T0 + timedelta(days=start),
                        end_time=None if length is None else T0 + timedelta(days=start + length))


# A put of a start already used replaces that subscription (same key), e.g. to end it.
changes = st.lists(
    st.one_of(
        st.tuples(st.just("put"), st.sampled_from(CUSTOMERS), st.integers(0, 60),
                  st.one_of(st.none(), st.integers(1, 60))),
        st.tuples(st.just("delete"), st.sampled_from(CUSTOMERS), st.integers(0, 60), st.none()),
    ),
    max_size=25,
)


@settings(max_examples=300, deadline=None)
@given(changes=changes, probes=st.lists(st.tuples(st.sampled_from([*CUSTOMERS, "z"]), st.integers(-5, 130)),
                                        max_size=20))
def test_answers_as_a_scan_of_every_subscription_after_any_changes(
    changes: list[tuple[str, str, int, int | None]], probes: list[tuple[str, int]],
) -> None:
    catalog = empty_catalog()
    for action, customer, start, length in changes:
        sub = subscription(customer, start, length)
        if action == "put":
            catalog.put(sub)
        else:
            catalog.delete("subscriptions", sub.key)
    for customer, day in probes:
        at = T0 + timedelta(days=day, hours=3)
        assert catalog.subscription_at(customer, at) == scanned(catalog, customer, at)
    for customer in CUSTOMERS:
        own = [s for s in catalog.subscriptions.values() if s.customer_name == customer]
        assert catalog.subscriptions_of(customer) == sorted(own, key=lambda s: s.start_time)
    assert set(catalog.subscriptions_by_customer) == {s.customer_name for s in catalog.subscriptions.values()}


def test_a_change_is_seen_at_once_and_a_copy_keeps_its_own() -> None:
    catalog = empty_catalog()
    first = subscription("a", 0, None)
    catalog.put(first)
    later = T0 + timedelta(days=40)
    copy = catalog.copy()
    ended = subscription("a", 0, 30)
    catalog.put(ended)  # the same key: replaces the first
    assert catalog.subscription_at("a", later) is None
    assert catalog.subscription_at("a", T0) == ended
    assert catalog.subscriptions_by_customer["a"] == (ended,)
    assert copy.subscription_at("a", later) == first  # the copy was taken before
    catalog.delete("subscriptions", ended.key)
    assert catalog.subscription_at("a", T0) is None
    assert "a" not in catalog.subscriptions_by_customer


def test_a_catalog_built_from_its_subscriptions_orders_them_too() -> None:
    subs = [subscription("a", 0, 10), subscription("a", 20, None), subscription("b", 5, None)]
    catalog = Catalog(subscriptions={s.key: s for s in subs})
    assert catalog.subscription_at("a", T0 + timedelta(days=25)) == subs[1]
    assert catalog.subscription_at("a", T0 + timedelta(days=15)) is None
    assert catalog.subscriptions_of("a") == subs[:2]


def test_the_judges_index_reads_subscriptions_live_so_a_catalog_change_rebuilds_only_meter_rules() -> None:
    catalog = empty_catalog()
    catalog.put(Meter.model_validate({"name": "m", "meter_type": "COUNTER", "data_type": "INT", "aggregation": "SUM"}))
    index = CatalogIndex(catalog)  # built before "a" has a subscription
    at = T0 + timedelta(days=2)
    window = (at - timedelta(days=35), at + timedelta(minutes=5))
    assert index.accepted("a", "m", None, {}, 1, at, *window) is None
    catalog.put(subscription("a", 0, None))
    accepted = index.accepted("a", "m", None, {}, 1, at, *window)
    assert accepted is not None and accepted[0] == "a"


def test_a_reader_on_another_thread_never_sees_a_replaced_subscription_missing() -> None:
    # A measurement folded while the catalog view's thread replaces its customer's
    # subscription (a plan change) must still find one covering its instant.
    catalog = empty_catalog()
    catalog.put(Subscription(customer_name="a", price_plan_name="p", start_time=T0))
    at = T0 + timedelta(days=1)
    stop = threading.Event()
    missing = []

    def read() -> None:
        while not stop.is_set():
            if catalog.subscription_at("a", at) is None:
                missing.append(at)

    switch = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)  # threads change hands every few bytecodes
    reader = threading.Thread(target=read)
    reader.start()
    try:
        for round_ in range(20_000):
            catalog.put(Subscription(customer_name="a", price_plan_name="p", start_time=T0,
                                     end_time=T0 + timedelta(days=100 + round_ % 2)))
    finally:
        stop.set()
        reader.join()
        sys.setswitchinterval(switch)
    assert missing == []
