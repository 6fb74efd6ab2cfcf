"""The Faust aggregator: measurements in, per-series period totals and watermarks out."""
