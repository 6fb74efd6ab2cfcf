"""What has been invoiced so far, per (customer, plan, period): revisions and lines.

Rebuilt at start from the invoices topic itself (read_committed), so the topic is the
single source of truth and nothing else has to be kept consistent with it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal, localcontext

from shared.models.invoice import Invoice, InvoiceLine
from shared.rating import PRECISION

PeriodKey = tuple[str, str, datetime, datetime]  # customer, plan, start, end
LineKey = tuple[str, str | None, str]  # type, meter, description


@dataclass
class Ledger:
    revisions: dict[PeriodKey, int] = field(default_factory=dict)
    invoiced: dict[PeriodKey, dict[LineKey, tuple[Decimal, Decimal]]] = field(default_factory=dict)

    def record(self, invoice: Invoice) -> None:
        key = (invoice.customer_name, invoice.price_plan_name, invoice.period_start, invoice.period_end)
        if self.revisions.get(key, -1) >= invoice.revision:
            return  # already known (a re-read); revisions only grow
        self.revisions[key] = invoice.revision
        lines = self.invoiced.setdefault(key, {})
        for line in invoice.lines:
            line_key = (line.type, line.meter_name, line.description)
            quantity, amount = lines.get(line_key, (Decimal(0), Decimal(0)))
            with localcontext() as ctx:
                ctx.prec = PRECISION  # keep every digit of 38-digit quantities
                lines[line_key] = (quantity + line.quantity, amount + line.amount)

    def next_revision(self, key: PeriodKey) -> int:
        return self.revisions.get(key, -1) + 1

    def difference(self, key: PeriodKey, rated: list[InvoiceLine]) -> list[InvoiceLine]:
        """Lines that take what was invoiced to what the period now rates at."""
        before = self.invoiced.get(key, {})
        after: dict[LineKey, InvoiceLine] = {(line.type, line.meter_name, line.description): line for line in rated}
        diff = []
        for line_key in list(after) + [k for k in before if k not in after]:
            q0, a0 = before.get(line_key, (Decimal(0), Decimal(0)))
            line = after.get(line_key)
            q1, a1 = (line.quantity, line.amount) if line is not None else (Decimal(0), Decimal(0))
            if q1 != q0 or a1 != a0:
                diff.append(
                    InvoiceLine(
                        type=line_key[0], meter_name=line_key[1], description=line_key[2],
                        quantity=q1 - q0, amount=a1 - a0,
                    )
                )
        return diff
