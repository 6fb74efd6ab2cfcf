"""services.ingest.envelopes.pack: one record per partition per chunk, nothing lost or reordered."""

from __future__ import annotations

import json
from typing import Any

from services.infra.partitioning import partition_for
from services.ingest import envelopes
from services.ingest.envelopes import pack


def _records(customers: list[str], n: int) -> list[tuple[bytes, bytes]]:
    return [(c.encode(), json.dumps({"id": f"{c}-{i}", "customer_name": c}).encode())
            for i in range(n) for c in customers]


def _items(value: bytes) -> list[dict[str, str]]:
    body = json.loads(value)
    return body if isinstance(body, list) else [body]


def test_every_measurement_lands_once_in_its_partition_in_order() -> None:
    customers = [f"c{i}" for i in range(20)]
    records = _records(customers, 30)
    packed = pack(records, partitions=4)
    assert len(packed) <= 4
    seen = []
    for key, value in packed:
        partition = partition_for(key, 4)
        for item in _items(value):
            assert partition_for(item["customer_name"].encode(), 4) == partition
            seen.append(item["id"])
    assert sorted(seen) == sorted(json.loads(v)["id"] for _, v in records)
    for customer in customers:
        mine = [i for i in seen if i.startswith(f"{customer}-")]
        assert mine == [f"{customer}-{i}" for i in range(30)]


def test_envelopes_are_bounded_in_items_and_bytes() -> None:
    records = _records(["acme"], 2500)
    packed = pack(records, partitions=2)
    assert [len(_items(v)) for _, v in packed] == [1000, 1000, 500]
    small = pack(records, partitions=2, max_bytes=5000)
    assert all(len(v) <= 5000 for _, v in small)
    assert sum(len(_items(v)) for _, v in small) == 2500


def test_a_lone_measurement_stays_a_plain_object() -> None:
    [(key, value)] = pack(_records(["acme"], 1), partitions=3)
    assert key == b"acme" and json.loads(value) == {"id": "acme-0", "customer_name": "acme"}
    assert envelopes.ENVELOPE_ITEMS == 1000


def test_the_publisher_applies_the_measured_settings_and_never_weakens_delivery(monkeypatch: Any) -> None:
    from services.ingest import publisher as module

    configs: list[dict[str, Any]] = []

    class Recorder:
        def __init__(self, config: dict[str, Any]) -> None:
            configs.append(config)

        def poll(self, timeout: float) -> int:
            return 0

        def flush(self, timeout: float) -> int:
            return 0

    monkeypatch.setattr(module, "Producer", Recorder)
    for overrides in (None, {"acks": "1", "enable.idempotence": False, "linger.ms": 0}):
        module.Publisher("127.0.0.1:9", overrides=overrides).close(timeout=0)
    default, overridden = configs
    assert {k: default[k] for k in module.PRODUCER_OVERRIDES} == module.PRODUCER_OVERRIDES
    for config in configs:
        assert (config["acks"], config["enable.idempotence"]) == ("all", True)
    assert overridden["linger.ms"] == 0
