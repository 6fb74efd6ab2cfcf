"""A catalog view's thread applies changes while the services' threads read the catalog:
a reader sees the entity as it was or as it is, never missing in between."""

from __future__ import annotations

import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from shared.catalog import Catalog
from shared.models import Customer, Measurement, Meter

MAPPING = [{"label": "tenant", "value": "t-1"}, {"label": "region", "value": "eu"}]


@contextmanager
def reading(check: Callable[[], bool]) -> Iterator[list[int]]:
    """A thread calling `check` until the block ends, with threads changing hands every
    few bytecodes; yields the list of its failures."""
    stop = threading.Event()
    failures: list[int] = []

    def read() -> None:
        while not stop.is_set():
            if not check():
                failures.append(1)

    switch = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    reader = threading.Thread(target=read)
    reader.start()
    try:
        yield failures
    finally:
        stop.set()
        reader.join()
        sys.setswitchinterval(switch)


def test_a_customer_updated_keeps_the_mappings_it_keeps_claimed_throughout() -> None:
    catalog = Catalog()
    catalog.put(Customer.model_validate({"name": "acme", "measurement_mappings": MAPPING}))
    with reading(lambda: catalog.mapping_owner("tenant", "t-1") == "acme") as failures:
        for round_ in range(20_000):
            catalog.put(Customer.model_validate(
                {"name": "acme", "display_name": f"Acme {round_ % 2}", "measurement_mappings": MAPPING}))
    assert failures == []


def test_a_customer_update_releases_the_mappings_it_dropped_and_keeps_others_claims() -> None:
    catalog = Catalog()
    catalog.put(Customer.model_validate({"name": "acme", "measurement_mappings": MAPPING}))
    catalog.put(Customer.model_validate({"name": "other", "measurement_mappings": [
        {"label": "region", "value": "eu"}, {"label": "tenant", "value": "t-2"}]}))
    catalog.put(Customer.model_validate({"name": "acme", "measurement_mappings": MAPPING[:1]}))
    assert catalog.mapping_owner("tenant", "t-1") == "acme"
    assert catalog.mapping_owner("region", "eu") is None  # acme dropped it; "other" came second
    assert catalog.mapping_owner("tenant", "t-2") == "other"
    catalog.delete("customers", "acme")
    assert catalog.mapping_owner("tenant", "t-1") is None
    assert catalog.mapping_owner("tenant", "t-2") == "other"


def test_a_meter_updated_keeps_its_event_found_throughout() -> None:
    catalog = Catalog()
    meter = {"name": "calls", "event_name": "api_call", "meter_type": "COUNTER", "data_type": "INT",
             "aggregation": "SUM"}
    catalog.put(Meter.model_validate(meter))
    measurement = Measurement.model_validate({"id": "1", "event_name": "api_call", "customer_name": "acme", "value": 1})
    with reading(lambda: len(catalog.meters_for(measurement)) == 1) as failures:
        for round_ in range(5_000):
            catalog.put(Meter.model_validate(meter | {"display_name": f"Calls {round_ % 2}"}))
    assert failures == []
