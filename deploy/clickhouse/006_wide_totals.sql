-- Sums must never overflow (issue 13). A value has at most 26 integer and 12 fractional
-- digits (shared/resolution.py), so a period total of up to 10^38 of them needs 64
-- integer digits: Decimal(76, 12) (ClickHouse's Decimal256). A gauge integral (a level
-- times at most ~10^10 seconds) fits too. Single measurement values stay Decimal(38, 12).
ALTER TABLE period_totals MODIFY COLUMN value Decimal(76, 12)
