"""PricePlan, exactly the seed schema `003_*.txt` (Octane's PricePlan).

One deliberate reading: the seed marks `PriceTier.cap` with the OpenAPI keyword
`nullable: true`, so `cap: null` (no upper bound) is accepted, as the seed's authors
meant and as semantics.md uses it. One documented bound the seed lacks: `name` is at
most MAX_NAME_LENGTH characters (shared.models.limits), as every catalog name is.
Everything else is draft-07 to the letter.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

from shared.models.base import SeedModel
from shared.models.json_types import (
    ArrayOf,
    JsonBool,
    JsonInteger,
    JsonNumber,
    JsonString,
    UtcDateTime,
)
from shared.models.limits import MAX_NAME_LENGTH

NonNegativeNumber = Annotated[JsonNumber, Field(ge=0)]
SchemeType = Literal["FLAT", "TIERED", "VOLUME", "PACKAGE"]
Period = Literal["monthly", "quarterly", "annual"]


class PriceTier(SeedModel):
    nullable_fields = frozenset({"cap"})

    price: NonNegativeNumber | None = None
    cap: JsonNumber | None = None


class PriceScheme(SeedModel):
    scheme_type: SchemeType | None = None
    unit_name: JsonString | None = None
    time_unit_name: JsonString | None = None
    prices: Annotated[list[PriceTier], ArrayOf] | None = None


class MeteredComponent(SeedModel):
    meter_name: JsonString
    meter_display_name: JsonString
    display_name: JsonString | None = None
    external_uuid: JsonString | None = None
    price_scheme: PriceScheme
    limit: JsonNumber | None = None
    minimum_charge: JsonNumber | None = None
    minimum_charge_frequency: JsonString | None = None
    watermark: JsonNumber | None = None


class Feature(SeedModel):
    name: JsonString
    display_name: JsonString | None = None
    description: JsonString | None = None


class AddOn(SeedModel):
    feature: Feature
    price: JsonNumber
    price_scheme_type: JsonString
    single_use: JsonBool
    quantity_enabled: JsonBool
    immediately_charge: JsonBool | None = None
    limit: JsonNumber | None = None
    price_frequency: JsonString | None = None
    charge_frequency: JsonString | None = None


class Limit(SeedModel):
    feature: Feature
    limit: JsonNumber


class Trial(SeedModel):
    time_length: JsonInteger | None = None
    time_unit_name: JsonString | None = None
    credit: JsonNumber | None = None


class PricePlan(SeedModel):
    name: Annotated[JsonString, Field(max_length=MAX_NAME_LENGTH)]
    display_name: JsonString | None = None
    description: JsonString | None = None
    external_uuid: JsonString | None = None
    base_price: NonNegativeNumber | None = None
    base_price_frequency: JsonString | None = None
    base_price_description: JsonString | None = None
    period: Period
    minimum_charge: NonNegativeNumber | None = None
    minimum_charge_frequency: JsonString | None = None
    metered_components: Annotated[list[MeteredComponent], ArrayOf]
    features: Annotated[list[Feature], ArrayOf] | None = None
    add_ons: Annotated[list[AddOn], ArrayOf] | None = None
    limits: Annotated[list[Limit], ArrayOf] | None = None
    trial: Trial | None = None
    created_at: UtcDateTime | None = None
