"""services.infra.partitioning.CustomerPartitions answers as partition_for does, in bounded memory."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from services.infra import partitioning
from services.infra.partitioning import CustomerPartitions, partition_for


@given(customers=st.lists(st.text(min_size=1, max_size=40), max_size=50), partitions=st.integers(1, 64))
def test_each_customer_lands_where_the_partitioner_puts_it_asked_once_or_again(
    customers: list[str], partitions: int,
) -> None:
    partition_of = CustomerPartitions(partitions).__getitem__
    for customer in customers + customers:
        assert partition_of(customer) == partition_for(customer.encode(), partitions)


def test_it_starts_over_when_full_and_keeps_answering_right() -> None:
    known = CustomerPartitions(12)
    names = [f"customer-{n}" for n in range((1 << 18) + 5)]
    for name in names:
        known[name]
    assert len(known) <= 1 << 18
    assert all(known[name] == partitioning.partition_for(name.encode(), 12) for name in names[:100] + names[-100:])
