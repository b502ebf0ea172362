"""Log lines name the trace and span they were written in, and nothing of tracing
when none is current."""

import logging

import orjson
from opentelemetry.sdk.trace import TracerProvider

from common.logging import JsonFormatter


def _line() -> dict:
    record = logging.LogRecord("test", logging.INFO, __file__, 1, "hello", None, None)
    return orjson.loads(JsonFormatter().format(record))


def test_a_line_written_in_a_span_carries_its_ids() -> None:
    tracer = TracerProvider().get_tracer("test")
    with tracer.start_as_current_span("request") as span:
        line = _line()
    context = span.get_span_context()
    assert line["trace_id"] == f"{context.trace_id:032x}"
    assert line["span_id"] == f"{context.span_id:016x}"


def test_a_line_outside_any_span_has_none() -> None:
    line = _line()
    assert "trace_id" not in line and "span_id" not in line
