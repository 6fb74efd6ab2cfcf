"""SubscriptionIndex answers exactly as Catalog.subscription_at, and follows catalog changes."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from shared.catalog import Catalog
from shared.models import Customer, PricePlan, Subscription
from shared.resolution import SubscriptionIndex

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def catalog_with(subs: list[Subscription]) -> Catalog:
    catalog = Catalog()
    catalog.put(PricePlan.model_validate({"name": "p", "period": "monthly", "metered_components": []}))
    for sub in subs:
        catalog.put(Customer.model_validate({"name": sub.customer_name}))
        catalog.put(sub)
    return catalog


subscriptions = st.lists(
    st.builds(
        lambda customer, start, length: Subscription(
            customer_name=customer, price_plan_name="p", start_time=T0 + timedelta(days=start),
            end_time=None if length is None else T0 + timedelta(days=start + length),
        ),
        st.sampled_from(["a", "b", "c"]), st.integers(0, 90), st.one_of(st.none(), st.integers(1, 60)),
    ),
    max_size=8,
)


@settings(max_examples=200, deadline=None)
@given(
    subs=subscriptions,
    probes=st.lists(st.tuples(st.sampled_from(["a", "b", "c", "z"]), st.integers(-5, 160)), max_size=20),
)
def test_same_answers_as_the_catalog(subs: list[Subscription], probes: list[tuple[str, int]]) -> None:
    catalog = catalog_with(subs)
    index = SubscriptionIndex(lambda: catalog, lambda: 0)
    for customer, day in probes:
        at = T0 + timedelta(days=day, hours=3)
        assert index(customer, at) == catalog.subscription_at(customer, at)


def test_rebuilt_when_the_version_or_the_catalog_changes() -> None:
    catalog = catalog_with([Subscription(customer_name="a", price_plan_name="p", start_time=T0)])
    version = [1]
    current = [catalog]
    index = SubscriptionIndex(lambda: current[0], lambda: version[0])
    later = T0 + timedelta(days=40)
    assert index("a", later) is not None
    ended = Subscription(customer_name="a", price_plan_name="p", start_time=T0, end_time=T0 + timedelta(days=30))
    catalog.put(ended)
    assert index("a", later) is not None  # same version: the index is what it was built from
    version[0] = 2
    assert index("a", later) is None
    assert index("a", T0) == ended
    current[0] = catalog_with([])
    assert index("a", T0) is None
