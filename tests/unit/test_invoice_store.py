from unittest.mock import MagicMock

from services.aggregator.invoice_store import InvoiceStore


def test_a_stop_before_start_returns_cleanly() -> None:
    # A SIGTERM can arrive while the worker is still starting; stopping must not raise,
    # or Faust's shutdown stalls.
    store = InvoiceStore("127.0.0.1:1", "t", "g", writer=MagicMock())
    store.stop()
