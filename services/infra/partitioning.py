"""Which partition a key lands in: murmur2, identical to Kafka's Java default partitioner.

All producers (confluent-kafka with `partitioner=murmur2_random`, aiokafka/Faust with
this function) must agree, so that a customer's measurements, its table state and its
period events share one partition number and one worker owns all of them.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache

from aiokafka.partitioner import murmur2

SEPARATOR = b"\x1f"
# Keys that name a partition directly (per-partition state such as the watermark).
PARTITION_PREFIX = b"\x00partition:"


def partition_for(key: bytes, partitions: int) -> int:
    hashed: int = murmur2(key)
    return (hashed & 0x7FFFFFFF) % partitions


# murmur2 in pure Python costs ~2.3 µs a key, and the aggregator asks for every measurement
# and every series; customers repeat, so a bounded cache answers almost every call.
@lru_cache(maxsize=1 << 18)
def customer_partition(customer: str, partitions: int) -> int:
    return partition_for(customer.encode(), partitions)


def partition_key(partition: int) -> str:
    return (PARTITION_PREFIX + str(partition).encode()).decode()


def table_partitioner(key: bytes | None, all_partitions: Sequence[int], available: Sequence[int]) -> int:
    """Faust's producer partitioner: a table key 'customer<US>...' goes with its customer."""
    if key is None:
        return all_partitions[0]
    if key.startswith(PARTITION_PREFIX):
        return int(key[len(PARTITION_PREFIX):]) % len(all_partitions)
    return partition_for(key.split(SEPARATOR, 1)[0], len(all_partitions))


class CustomerPartitions(dict[str, int]):
    """customer -> partition, for `partitions` partitions: a dict whose misses compute it.

    `CustomerPartitions(n).__getitem__` answers a known customer in one C-level lookup:
    the aggregator asks once per measurement, and the cached function's call took 4 % of
    its time holding the GIL (a py-spy --gil profile of bench.fold). Bounded like that
    cache: full, it starts over.
    """

    def __init__(self, partitions: int) -> None:
        super().__init__()
        self.partitions = partitions

    def __missing__(self, customer: str) -> int:
        if len(self) >= 1 << 18:
            self.clear()
        partition = self[customer] = partition_for(customer.encode(), self.partitions)
        return partition
