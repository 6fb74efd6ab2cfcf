"""Ledger + invoice_for: first invoice, nothing-new re-runs, and difference corrections."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest

from services.rater.invoicing import UnknownPlan, invoice_for
from services.rater.ledger import Ledger
from shared.catalog import Catalog, parse_catalog
from shared.models.invoice import Invoice, InvoiceLine, PeriodTotals, invoice_id

D = Decimal
JAN, FEB = datetime(2026, 1, 1, tzinfo=UTC), datetime(2026, 2, 1, tzinfo=UTC)
NOW = datetime(2026, 2, 1, 1, 0, 3, tzinfo=UTC)
KEY = ("acme", "growth-plan", JAN, FEB)


@pytest.fixture(scope="module")
def catalog() -> Catalog:
    parsed, problems = parse_catalog({
        "meters": [{"name": "api_calls"}],
        "price_plans": [{
            "name": "growth-plan", "period": "monthly", "base_price": 49.00, "base_price_description": "Platform fee",
            "metered_components": [{
                "meter_name": "api_calls", "meter_display_name": "API calls",
                "price_scheme": {"scheme_type": "TIERED", "prices": [
                    {"price": 0.00, "cap": 10000}, {"price": 0.001, "cap": 100000}, {"price": 0.0005, "cap": None}]},
            }],
        }],
        "customers": [{"name": "acme"}],
        "subscriptions": [
            {"customer_name": "acme", "price_plan_name": "growth-plan", "start_time": "2026-01-01T00:00:00Z"},
        ],
    })
    assert problems == []
    return parsed


def totals(calls: Any, reason: str = "closed", plan: str = "growth-plan", **series: Any) -> PeriodTotals:
    return PeriodTotals(
        customer_name="acme", price_plan_name=plan, subscription_start=JAN, period_index=0,
        period_start=JAN, period_end=FEB, totals={"api_calls": series or {"": D(calls)}},
        reason=reason, watermark=NOW,  # type: ignore[arg-type]
    )


def lines_of(invoice: Invoice) -> list[tuple[str, str | None, Decimal, Decimal]]:
    return [(line.type, line.meter_name, line.quantity, line.amount) for line in invoice.lines]


def test_first_rating_is_revision_0_invoice(catalog: Catalog) -> None:
    invoice = invoice_for(totals(150000), catalog, Ledger(), NOW)
    assert invoice is not None
    assert (invoice.revision, invoice.kind, invoice.total) == (0, "invoice", D("164.00"))
    assert lines_of(invoice) == [("base_price", None, D(1), D("49.00")), ("usage", "api_calls", D(150000), D("115.00"))]
    assert invoice.invoice_id == invoice_id("acme", "growth-plan", JAN, FEB, 0)
    assert json.loads(invoice.model_dump_json()) == {
        "invoice_id": invoice.invoice_id, "revision": 0, "kind": "invoice",
        "customer_name": "acme", "price_plan_name": "growth-plan",
        "period_start": "2026-01-01T00:00:00Z", "period_end": "2026-02-01T00:00:00Z", "currency": "USD",
        "lines": [
            {"type": "base_price", "description": "Platform fee", "meter_name": None,
             "quantity": "1", "amount": "49.00"},
            {"type": "usage", "description": "API calls", "meter_name": "api_calls",
             "quantity": "150000", "amount": "115.00"},
        ],
        "total": "164.00", "issued_at": "2026-02-01T01:00:03Z",
    }


def test_series_are_summed(catalog: Catalog) -> None:
    invoice = invoice_for(totals(None, **{"region=eu": D(100000), "region=us": D(50000)}), catalog, Ledger(), NOW)
    assert invoice is not None and invoice.total == D("164.00")


def test_the_same_totals_again_publish_nothing(catalog: Catalog) -> None:
    ledger = Ledger()
    first = invoice_for(totals(150000), catalog, ledger, NOW)
    assert first is not None
    ledger.record(first)
    assert invoice_for(totals(150000), catalog, ledger, NOW) is None
    assert invoice_for(totals(150000, reason="late_usage"), catalog, ledger, NOW) is None


def test_higher_usage_gives_a_correction_of_the_difference(catalog: Catalog) -> None:
    ledger = Ledger()
    first = invoice_for(totals(150000), catalog, ledger, NOW)
    assert first is not None
    ledger.record(first)
    correction = invoice_for(totals(160000, reason="late_usage"), catalog, ledger, NOW)
    assert correction is not None
    assert (correction.revision, correction.kind) == (1, "correction")
    # 160,000 calls rate at 120.00; 115.00 was invoiced. The base price did not change.
    assert lines_of(correction) == [("usage", "api_calls", D(10000), D("5.00"))]
    assert correction.total == D("5.00")
    assert correction.invoice_id == invoice_id("acme", "growth-plan", JAN, FEB, 1)
    ledger.record(correction)
    assert ledger.revisions[KEY] == 1
    assert ledger.invoiced[KEY][("usage", "api_calls", "API calls")] == (D(160000), D("120.00"))
    assert invoice_for(totals(160000), catalog, ledger, NOW) is None
    second = invoice_for(totals(170000), catalog, ledger, NOW)
    assert second is not None
    assert (second.revision, lines_of(second), second.total) == (
        2, [("usage", "api_calls", D(10000), D("5.00"))], D("5.00"),
    )


def test_rereading_a_recorded_revision_does_not_double_it(catalog: Catalog) -> None:
    ledger = Ledger()
    first = invoice_for(totals(150000), catalog, ledger, NOW)
    assert first is not None
    ledger.record(first)
    ledger.record(first)
    assert ledger.invoiced[KEY][("usage", "api_calls", "API calls")] == (D(150000), D("115.00"))
    assert ledger.next_revision(KEY) == 1


def test_difference_includes_lines_that_disappeared() -> None:
    ledger = Ledger()
    ledger.record(Invoice(
        invoice_id="x", revision=0, kind="invoice", customer_name="acme", price_plan_name="growth-plan",
        period_start=JAN, period_end=FEB, issued_at=NOW, total=D("59.00"),
        lines=[InvoiceLine(type="base_price", description="Fee", quantity=D(1), amount=D("49.00")),
               InvoiceLine(type="minimum_charge", description="Minimum charge true-up",
                           quantity=D(1), amount=D("10.00"))],
    ))
    rated = [InvoiceLine(type="base_price", description="Fee", quantity=D(1), amount=D("49.00")),
             InvoiceLine(type="usage", description="API calls", meter_name="api_calls",
                         quantity=D(20000), amount=D("12.00"))]
    assert [(line.type, line.quantity, line.amount) for line in ledger.difference(KEY, rated)] == [
        ("usage", D(20000), D("12.00")),
        ("minimum_charge", D(-1), D("-10.00")),
    ]


def test_invoice_id_is_deterministic() -> None:
    same = invoice_id("acme", "growth-plan", JAN, FEB, 0)
    assert same == invoice_id("acme", "growth-plan", JAN, FEB, 0)
    assert len({same, invoice_id("acme", "growth-plan", JAN, FEB, 1), invoice_id("globex", "growth-plan", JAN, FEB, 0),
                invoice_id("acme", "other", JAN, FEB, 0), invoice_id("acme", "growth-plan", FEB, FEB, 0)}) == 5


def test_unknown_plan(catalog: Catalog) -> None:
    with pytest.raises(UnknownPlan):
        invoice_for(totals(1, plan="ghost"), catalog, Ledger(), NOW)


def test_many_digit_series_totals_are_summed_exactly(catalog: Catalog) -> None:
    half = D("12345678901234567890.123456789012")
    invoice = invoice_for(totals(None, a=half, b=half), catalog, Ledger(), NOW)
    assert invoice is not None
    assert invoice.lines[1].quantity == D("24691357802469135780.246913578024")


def test_many_digit_corrections_are_exact(catalog: Catalog) -> None:
    ledger = Ledger()
    big = D("12345678901234567890123456.000000000000")
    first = invoice_for(totals(None, a=big, b=big), catalog, ledger, NOW)
    assert first is not None
    ledger.record(first)
    correction = invoice_for(totals(None, a=big, b=D("12345678901234567890123456.000000000001")), catalog, ledger, NOW)
    assert correction is not None
    assert [(line.type, line.quantity) for line in correction.lines] == [("usage", D("0.000000000001"))]
