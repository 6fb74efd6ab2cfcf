import json
import logging

import pytest

from services.infra.logs import JsonFormatter, configure


def test_log_lines_are_json_with_ids_as_fields() -> None:
    record = logging.LogRecord("metering.rater", logging.INFO, __file__, 1, "published %s", ("x",), None)
    record.invoice_id = "6f1d"
    line = json.loads(JsonFormatter().format(record))
    assert line["msg"] == "published x" and line["invoice_id"] == "6f1d" and line["level"] == "INFO"
    assert "measurement_id" not in line


def test_faust_flow_control_warnings_are_dropped_and_other_producer_warnings_kept(
    capsys: "pytest.CaptureFixture[str]",
) -> None:
    root = logging.getLogger()
    saved = (list(root.handlers), root.level)
    try:
        configure()
        producer_log = logging.getLogger("faust.transport.producer")
        producer_log.warning("producer buffer full size 1279")
        producer_log.warning("something else about the producer")
        lines = [json.loads(line) for line in capsys.readouterr().err.splitlines() if line.strip()]
    finally:
        root.handlers[:], root.level = saved
    assert [line["msg"] for line in lines] == ["something else about the producer"]
