"""Length limits of names and measurement fields (docs/decisions.md, "Limits").

Every name is a key: in Kafka record keys, ClickHouse rows, URL paths and Faust state.
Unbounded, one hostile name makes a record the broker cannot take (1 MB) or a key that
costs memory in every service, so each is bounded here, in the models, where the HTTP
API, `metering catalog apply` and the aggregator's judging of Kafka-native records all
meet it. Lengths count characters (code points), as pydantic's `max_length` does.
"""

from __future__ import annotations

# Customer, meter, price plan and event names, and every reference to one (a
# measurement's customer_name/meter_name/event_name, a subscription's names).
MAX_NAME_LENGTH = 256
MAX_ID_LENGTH = 256  # a measurement's id
MAX_LABELS = 32  # labels per measurement
MAX_LABEL_LENGTH = 256  # a label's key, and its value
# A measurement's value sent as a string (a STRING meter's value, or decimal text).
MAX_VALUE_LENGTH = 1024
