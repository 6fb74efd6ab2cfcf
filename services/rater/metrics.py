"""Prometheus metrics of the rater. Labels are bounded: never a customer or invoice id."""

from prometheus_client import Counter, Histogram

PERIODS_CLOSED = Counter("metering_rater_periods_closed_total", "PeriodTotals events read", ["reason"])
INVOICES = Counter("metering_rater_invoices_published_total", "Invoice events published", ["kind"])
UNCHANGED = Counter("metering_rater_periods_unchanged_total", "PeriodTotals that changed nothing (replays, re-runs)")
AMOUNT = Counter("metering_rater_invoiced_amount_total", "Sum of published invoice totals", ["currency"])
RATING = Histogram("metering_rater_rating_duration_seconds", "Time to rate one period")

# Every bounded label value exists from the first scrape (a 0, not a missing series).
for _kind in ("invoice", "correction"):
    INVOICES.labels(_kind)
for _reason in ("closed", "late_usage"):
    PERIODS_CLOSED.labels(_reason)
AMOUNT.labels("USD")
