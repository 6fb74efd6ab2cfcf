from services.aggregator.processing import _WriteBack


def test_reads_see_pending_writes_and_flush_applies_them_once() -> None:
    table = {"a": 1, "b": 2}
    buffer = _WriteBack(table)
    buffer["c"] = 3
    buffer["a"] = 10
    del buffer["b"]
    assert buffer.get("a") == 10 and buffer.get("b") is None and "b" not in buffer and buffer["c"] == 3
    assert sorted(buffer) == ["a", "c"] and len(buffer) == 2
    assert table == {"a": 1, "b": 2}  # nothing written before flush
    buffer.flush()
    assert table == {"a": 10, "c": 3}
