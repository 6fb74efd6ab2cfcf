-- An invoice total is a sum of priced quantities as large as a period total (see 006).
ALTER TABLE invoices MODIFY COLUMN total Decimal(76, 2)
