"""Domain models and the pure math of metering and billing (no I/O lives here)."""
