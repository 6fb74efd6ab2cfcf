"""Subscription: a customer on a price plan from `start_time`, optionally until `end_time`."""

from __future__ import annotations

from pydantic import Field, StrictInt, StrictStr, model_validator

from shared.models.base import ClosedModel
from shared.models.json_types import UtcDateTime
from shared.models.limits import MAX_NAME_LENGTH


class SubscribedAddOn(ClosedModel):
    feature: StrictStr = Field(min_length=1)
    quantity: StrictInt = Field(default=1, ge=1)


class Subscription(ClosedModel):
    customer_name: StrictStr = Field(min_length=1, max_length=MAX_NAME_LENGTH)
    price_plan_name: StrictStr = Field(min_length=1, max_length=MAX_NAME_LENGTH)
    start_time: UtcDateTime
    end_time: UtcDateTime | None = None
    add_ons: list[SubscribedAddOn] = Field(default_factory=list)

    @model_validator(mode="after")
    def _ends_after_start(self) -> Subscription:
        if self.end_time is not None and self.end_time <= self.start_time:
            raise ValueError("end_time: must be after start_time")
        return self

    @property
    def key(self) -> str:
        """Stable identity: a customer has at most one subscription starting at an instant."""
        return f"{self.customer_name}@{self.start_time.isoformat()}"
