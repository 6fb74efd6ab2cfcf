"""Domain models: the seed shapes (Customer, PricePlan) and our own (Meter, Measurement, ...)."""

from shared.models.customer import ContactInfo, Customer
from shared.models.measurement import Measurement
from shared.models.meter import Meter
from shared.models.price_plan import (
    AddOn,
    Feature,
    Limit,
    MeteredComponent,
    PricePlan,
    PriceScheme,
    PriceTier,
    Trial,
)
from shared.models.subscription import SubscribedAddOn, Subscription

__all__ = [
    "AddOn",
    "ContactInfo",
    "Customer",
    "Feature",
    "Limit",
    "Measurement",
    "Meter",
    "MeteredComponent",
    "PricePlan",
    "PriceScheme",
    "PriceTier",
    "SubscribedAddOn",
    "Subscription",
    "Trial",
]
