import json
import logging

from services.infra.logs import JsonFormatter


def test_log_lines_are_json_with_ids_as_fields() -> None:
    record = logging.LogRecord("metering.rater", logging.INFO, __file__, 1, "published %s", ("x",), None)
    record.invoice_id = "6f1d"
    line = json.loads(JsonFormatter().format(record))
    assert line["msg"] == "published x" and line["invoice_id"] == "6f1d" and line["level"] == "INFO"
    assert "measurement_id" not in line
