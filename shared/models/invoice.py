"""Invoice events (semantics.md, Invoice event) and the period totals that feed them."""

from __future__ import annotations

import uuid
from datetime import datetime
from decimal import Decimal
from typing import Annotated, Literal

from pydantic import BeforeValidator, Field, PlainSerializer, StrictStr

from shared.models.base import ClosedModel
from shared.models.json_types import UtcDateTime
from shared.money import decimal_text

LineType = Literal["base_price", "usage", "minimum_charge", "add_on", "trial_credit"]

# Decimals travel as strings so no consumer ever parses money into a float.
DecimalText = Annotated[
    Decimal,
    BeforeValidator(lambda v: Decimal(v) if isinstance(v, str) else v),
    PlainSerializer(decimal_text, return_type=str),
]
MoneyText = Annotated[
    Decimal,
    BeforeValidator(lambda v: Decimal(v) if isinstance(v, str) else v),
    PlainSerializer(lambda d: str(d), return_type=str),
]

_INVOICE_NAMESPACE = uuid.UUID("6f1d3c52-4a0e-5b8e-9d2a-6b7e0c1f2a3b")


class InvoiceLine(ClosedModel):
    type: LineType
    description: StrictStr
    meter_name: StrictStr | None = None
    quantity: DecimalText
    amount: MoneyText


class Invoice(ClosedModel):
    invoice_id: StrictStr
    revision: int = Field(ge=0)
    kind: Literal["invoice", "correction"]
    customer_name: StrictStr
    price_plan_name: StrictStr
    period_start: UtcDateTime
    period_end: UtcDateTime
    currency: StrictStr = "USD"
    lines: list[InvoiceLine]
    total: MoneyText
    issued_at: UtcDateTime


def invoice_id(customer: str, plan: str, start: datetime, end: datetime, revision: int) -> str:
    """Same customer, plan, period and revision give the same id, on any machine."""
    name = "\x1f".join([customer, plan, start.isoformat(), end.isoformat(), str(revision)])
    return str(uuid.uuid5(_INVOICE_NAMESPACE, name))


class PeriodTotals(ClosedModel):
    """The aggregator's word that a period's usage is final (or changed after close)."""

    customer_name: StrictStr
    price_plan_name: StrictStr
    subscription_start: UtcDateTime
    period_index: int = Field(ge=0)
    period_start: UtcDateTime
    period_end: UtcDateTime
    # meter name -> primary-label series key -> aggregated quantity
    totals: dict[str, dict[str, DecimalText]]
    reason: Literal["closed", "late_usage"]
    watermark: UtcDateTime
    # meter name -> series key -> the part of `totals` the plan's trial leaves unbilled
    # (shared/rating.py, RatingInput.usage_in_trial): for SUM/COUNT and a GAUGE's SUM the
    # total of the in-trial slice of the period; for MAX/MIN/UNIQUE_COUNT the period
    # quantity less that of the post-trial slice alone. Empty when the period does not
    # overlap a trial (and until the aggregator fills it).
    trial_totals: dict[str, dict[str, DecimalText]] = Field(default_factory=dict)
