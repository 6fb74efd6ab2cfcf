"""Customer, exactly the seed schema `000_*.txt` (Octane's Customer), with one documented
bound the seed lacks: `name` is at most MAX_NAME_LENGTH characters (shared.models.limits)."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

from shared.models.base import SeedModel
from shared.models.json_types import (
    ArrayOf,
    EmailString,
    JsonString,
    StrictObject,
    UriString,
    UtcDateTime,
)
from shared.models.limits import MAX_NAME_LENGTH


class ContactInfo(SeedModel):
    address_line_1: JsonString | None = None
    address_line_2: JsonString | None = None
    city: JsonString | None = None
    state: JsonString | None = None
    country: JsonString | None = None
    zipcode: JsonString | None = None
    url: UriString | None = None
    logo_url: UriString | None = None
    email: EmailString | None = None
    secondary_emails: Annotated[list[JsonString], ArrayOf] | None = None
    phone: JsonString | None = None
    legal_name: JsonString | None = None
    vat_id: JsonString | None = None


class Customer(SeedModel):
    # The name is the customer's key everywhere (catalog topic, measurement records,
    # paths); a bound keeps every record that carries it within the broker's limit.
    name: Annotated[JsonString, Field(max_length=MAX_NAME_LENGTH)]
    display_name: JsonString | None = None
    contact_info: ContactInfo | None = None
    created_at: UtcDateTime | None = None
    # The seed types items only as "object"; the {label, value} rule of semantics.md
    # is a catalog rule (shared.catalog_rules), so the shape stays exactly the seed's.
    measurement_mappings: Annotated[list[StrictObject], ArrayOf] | None = None
    tags: Annotated[list[StrictObject], ArrayOf] | None = None

    def mapping_pairs(self) -> list[tuple[str, str]]:
        """The (label, value) pairs this customer claims; malformed items are skipped."""
        pairs = []
        for item in self.measurement_mappings or []:
            label, value = item.get("label"), item.get("value")
            if isinstance(label, str) and isinstance(value, str):
                pairs.append((label, value))
        return pairs
