"""Bounded metric label values derived from error fields."""

KNOWN_FIELDS = frozenset({
    "id", "meter_name", "event_name", "customer_name", "value", "time", "labels", "reset_total",
    "key", "body", "measurement",
})


def field_label(field: str) -> str:
    """'labels.region' -> 'labels'; anything unexpected -> 'other' (label sets stay small)."""
    head = field.split(".", 1)[0].split("[", 1)[0]
    return head if head in KNOWN_FIELDS else "other"
