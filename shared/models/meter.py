"""Meter: what a measurement stream means and how it aggregates (semantics.md)."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, StrictBool, StrictStr, StringConstraints, model_validator

from shared.models.base import ClosedModel
from shared.models.limits import MAX_LABEL_LENGTH, MAX_NAME_LENGTH

MeterType = Literal["COUNTER", "GAUGE"]
DataType = Literal["INT", "FLOAT", "STRING"]
Aggregation = Literal["SUM", "COUNT", "MAX", "MIN", "UNIQUE_COUNT"]
ReportingMethod = Literal["periodic", "total"]

NAME_PATTERN = r"^[^\x00-\x20\x7f](?:[^\x00-\x1f\x7f]*[^\x00-\x20\x7f])?$"
# Label names and filter values a measurement's labels are matched against: no longer
# than a measurement's label can be (shared.models.limits).
LabelText = Annotated[StrictStr, StringConstraints(max_length=MAX_LABEL_LENGTH)]


class Meter(ClosedModel):
    name: StrictStr = Field(min_length=1, max_length=MAX_NAME_LENGTH, pattern=NAME_PATTERN)
    display_name: StrictStr | None = None
    description: StrictStr | None = None
    event_name: StrictStr | None = Field(default=None, min_length=1, max_length=MAX_NAME_LENGTH)
    meter_type: MeterType = "COUNTER"
    data_type: DataType = "INT"
    aggregation: Aggregation = "SUM"
    unit_name: StrictStr | None = None
    is_incremental: StrictBool = True
    reporting_method: ReportingMethod = "periodic"
    expected_labels: list[LabelText] = Field(default_factory=list)
    primary_labels: list[LabelText] = Field(default_factory=list)
    event_label_filter: dict[LabelText, LabelText] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _consistent(self) -> Meter:
        if self.data_type == "STRING" and self.aggregation != "UNIQUE_COUNT":
            raise ValueError("data_type: STRING is allowed only with aggregation UNIQUE_COUNT")
        if self.meter_type == "GAUGE" and self.aggregation not in ("SUM", "MAX", "MIN"):
            raise ValueError("aggregation: a GAUGE meter aggregates by SUM, MAX or MIN")
        if len(set(self.primary_labels)) != len(self.primary_labels):
            raise ValueError("primary_labels: must not repeat a label")
        return self
