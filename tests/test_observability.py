"""Request metrics, request ids and log lines: the per-request pieces made cheap in observability.py."""

from __future__ import annotations

import json
import logging

from prometheus_client import CollectorRegistry, generate_latest

from dcslog.app import SAFE_REQUEST_ID
from dcslog.observability import (
    JsonFormatter,
    RequestMetrics,
    TextFormatter,
    new_request_id,
    request_id_var,
)


def _exposition(metrics: RequestMetrics) -> list[str]:
    registry = CollectorRegistry()
    registry.register(metrics)
    return generate_latest(registry).decode().splitlines()


def test_request_metrics_are_cumulative_buckets_with_bounded_methods():
    metrics = RequestMetrics()
    for seconds in (0.0005, 0.001, 0.003, 0.003, 20.0):
        metrics.count("/v2/{project_id}/instances", "GET", 200, seconds)
    metrics.count("/v2/{project_id}/instances", "GET", 401, 0.002)
    metrics.count("(unmatched)", "BREW", 404, 0.0001)  # a client-chosen method is not a new series
    lines = _exposition(metrics)

    def value(prefix: str) -> float:
        return float(next(line for line in lines if line.startswith(prefix)).rsplit(" ", 1)[1])

    route = 'route="/v2/{project_id}/instances"'
    assert value(f'dcslog_http_requests_total{{method="GET",{route},status="200"}}') == 5
    assert value(f'dcslog_http_requests_total{{method="GET",{route},status="401"}}') == 1
    assert value('dcslog_http_requests_total{method="other",route="(unmatched)",status="404"}') == 1
    # le is "less than or equal": 0.001 lands in the 0.001 bucket.
    assert value(f'dcslog_http_request_duration_seconds_bucket{{le="0.001",method="GET",{route}}}') == 2
    assert value(f'dcslog_http_request_duration_seconds_bucket{{le="0.0025",method="GET",{route}}}') == 3
    assert value(f'dcslog_http_request_duration_seconds_bucket{{le="0.005",method="GET",{route}}}') == 5
    assert value(f'dcslog_http_request_duration_seconds_bucket{{le="10.0",method="GET",{route}}}') == 5
    assert value(f'dcslog_http_request_duration_seconds_bucket{{le="+Inf",method="GET",{route}}}') == 6
    assert value(f'dcslog_http_request_duration_seconds_count{{method="GET",{route}}}') == 6
    assert abs(value(f'dcslog_http_request_duration_seconds_sum{{method="GET",{route}}}') - 20.0095) < 1e-9
    assert not any('method="BREW"' in line for line in lines)


def test_request_ids_are_unique_and_tame():
    ids = {new_request_id() for _ in range(10_000)}
    assert len(ids) == 10_000
    assert all(SAFE_REQUEST_ID.fullmatch(i) and len(i) == 32 for i in ids)


def _record(message: str, created: float) -> logging.LogRecord:
    record = logging.LogRecord("aiohttp.access", logging.INFO, __file__, 1, message, None, None)
    record.created, record.msecs = created, (created % 1) * 1000
    record.request_id = "rid-1"
    return record


def test_fast_line_is_the_record_line():
    # log_info writes formatter.line(...) without a LogRecord: it must read exactly like a logged record.
    created = 1_795_000_000.25
    for formatter in (TextFormatter(), JsonFormatter()):
        assert formatter.line(created, "INFO", "aiohttp.access", "rid-1", "GET /x 200 0.1ms") == \
            formatter.format(_record("GET /x 200 0.1ms", created))
    entry = json.loads(JsonFormatter().line(created, "INFO", "aiohttp.access", "rid-1", "m"))
    assert entry == {"time": "2026-11-18T11:06:40.250Z", "level": "INFO", "logger": "aiohttp.access",
                     "message": "m", "request_id": "rid-1"}


def test_exceptions_keep_their_traceback():
    try:
        raise ValueError("boom")
    except ValueError:
        record = logging.LogRecord("dcslog", logging.ERROR, __file__, 1, "failed", None, __import__("sys").exc_info())
    record.request_id = request_id_var.get()
    text = TextFormatter().format(record)
    assert text.splitlines()[0].endswith("ERROR dcslog [-] failed") and "ValueError: boom" in text
    assert "ValueError: boom" in json.loads(JsonFormatter().format(record))["exception"]
