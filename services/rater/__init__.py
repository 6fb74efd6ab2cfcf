"""The rater: prices closed periods and publishes invoice events exactly once."""
