"""Prometheus metrics of the rater. Labels are bounded: never a customer or invoice id."""

from prometheus_client import Counter, Histogram

from shared.models.invoice import Invoice

PERIODS_CLOSED = Counter("metering_rater_periods_closed_total", "PeriodTotals events read", ["reason"])
INVOICES = Counter("metering_rater_invoices_published_total", "Invoice events published", ["kind"])
UNCHANGED = Counter("metering_rater_periods_unchanged_total", "PeriodTotals that changed nothing (replays, re-runs)")
# A Prometheus counter only goes up, and a downward correction has a negative total:
# amounts are counted as positive numbers, charged or credited; net = charged - credited.
AMOUNT = Counter(
    "metering_rater_invoiced_amount_total",
    "Published invoice totals as positive amounts: charged (total >= 0) or credited (total < 0)",
    ["currency", "direction"],
)
DEAD_LETTERS = Counter(
    "metering_rater_dead_letters_total", "PeriodTotals records dead-lettered instead of rated", ["reason"]
)
RATING = Histogram("metering_rater_rating_duration_seconds", "Time to rate one period")

DIRECTIONS = ("charged", "credited")
DEAD_LETTER_REASONS = ("unreadable", "unknown_plan")

# Every bounded label value exists from the first scrape (a 0, not a missing series).
for _kind in ("invoice", "correction"):
    INVOICES.labels(_kind)
for _reason in ("closed", "late_usage"):
    PERIODS_CLOSED.labels(_reason)
for _direction in DIRECTIONS:
    AMOUNT.labels("USD", _direction)
for _reason in DEAD_LETTER_REASONS:
    DEAD_LETTERS.labels(_reason)


def count_published(invoice: Invoice) -> None:
    """Count one published invoice (or correction) and its amount, after its commit."""
    INVOICES.labels(invoice.kind).inc()
    direction = "credited" if invoice.total < 0 else "charged"
    AMOUNT.labels(invoice.currency, direction).inc(float(abs(invoice.total)))
