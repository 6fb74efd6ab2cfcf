"""Events the pipeline publishes besides invoices."""

from __future__ import annotations

from pydantic import StrictStr

from shared.models.base import ClosedModel
from shared.models.invoice import DecimalText
from shared.models.json_types import UtcDateTime


class LimitExceededEvent(ClosedModel):
    """A plan limit crossed in a period: published once per customer, feature and period."""

    customer_name: StrictStr
    price_plan_name: StrictStr
    feature: StrictStr
    period_start: UtcDateTime
    period_end: UtcDateTime
    limit: DecimalText
    usage: DecimalText
    detected_at: UtcDateTime
