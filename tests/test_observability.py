"""Request metrics, request ids and log lines: the per-request pieces made cheap in observability.py."""

from __future__ import annotations

import json
import logging

import httpx
import pytest
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from dcslog.httpserver import SAFE_REQUEST_ID
from dcslog.observability import (
    JsonFormatter,
    RequestMetrics,
    TextFormatter,
    new_request_id,
    request_id_var,
)
from dcslog.testing.ports import free_port


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


# --- Who sees what on /metrics -------------------------------------------------------------------

METRICS_TOKEN = "metrics-token-for-tests-0123456789abcdef"


def every_series(server) -> str:
    """``server``'s /metrics with the per-node series, which need DCSLOG_METRICS_TOKEN (set here on
    the running server's settings) or the metrics-only listener."""
    from pydantic import SecretStr

    server.settings.metrics_token = SecretStr(METRICS_TOKEN)
    response = _scrape(server.url + "/metrics", Authorization=f"Bearer {METRICS_TOKEN}")
    assert response.status_code == 200, response.text
    return response.text


def _scrape(url: str, **headers: str) -> httpx.Response:
    return httpx.get(url, headers=headers, timeout=30)


def _families(text: str) -> dict[str, list]:
    """The exposition as Prometheus reads it (a parse error fails the test)."""
    return {family.name: family.samples for family in text_string_to_metric_families(text)}


def _harvested_instance(server, redis_standalone) -> tuple[str, str]:
    imported = server.import_instance(redis_standalone.url)
    server.harvest()
    return imported["instance_id"], imported["group_list"][0]["replication_list"][0]["replication_id"]


def test_metrics_without_a_token_show_totals_and_no_ids(dcslog_server, redis_standalone):
    """Every project's instance and replica ids used to be on the API port's /metrics for anyone."""
    instance_id, replication_id = _harvested_instance(dcslog_server, redis_standalone)
    response = _scrape(dcslog_server.url + "/metrics")
    assert response.status_code == 200
    assert instance_id not in response.text and replication_id not in response.text
    assert "instance_id=" not in response.text and "replication_id=" not in response.text
    families = _families(response.text)
    [up] = [s for s in families["dcslog_slowlog_nodes"] if s.labels == {"state": "up"}]
    assert up.value == 1
    assert families["dcslog_slowlog_max_harvest_age_seconds"][0].value >= 0
    assert families["dcslog_slowlog_lost_entries_all_nodes"][0].value == 0
    assert "dcslog_http_requests" in families and "dcslog_collection_jobs" in families
    assert "need DCSLOG_METRICS_TOKEN or DCSLOG_METRICS_PORT" in response.text  # says how to see more


def test_metrics_token_is_required_once_set_and_shows_every_series(dcslog_server_factory, redis_standalone):
    with dcslog_server_factory(metrics_token=METRICS_TOKEN) as server:
        instance_id, replication_id = _harvested_instance(server, redis_standalone)
        url = server.url + "/metrics"
        for headers, code in (({}, "DCS.1003"), ({"Authorization": "Bearer"}, "DCS.1003"),
                              ({"Authorization": "Bearer wrong"}, "DCS.1001"),
                              ({"Authorization": f"Bearer {METRICS_TOKEN}x"}, "DCS.1001"),
                              ({"Authorization": f"Basic {METRICS_TOKEN}"}, "DCS.1001"),
                              ({"X-Auth-Token": METRICS_TOKEN}, "DCS.1003")):
            response = _scrape(url, **headers)
            assert response.status_code == 401, headers
            assert response.json()["error_code"] == code and set(response.json()) == {
                "error_code", "error_msg", "error_ext_msg"}
            assert response.headers["WWW-Authenticate"] == 'Bearer realm="dcslog metrics"'
            assert instance_id not in response.text and METRICS_TOKEN not in response.text
        response = _scrape(url, Authorization=f"Bearer {METRICS_TOKEN}")
        assert response.status_code == 200
        families = _families(response.text)
        [lost] = families["dcslog_slowlog_lost_entries"]
        assert lost.labels == {"instance_id": instance_id, "replication_id": replication_id}
        assert "need DCSLOG_METRICS_TOKEN" not in response.text
        assert _scrape(url, Authorization=f"bearer {METRICS_TOKEN}").status_code == 200  # the scheme is case-blind


def test_metrics_listener_of_its_own(dcslog_server_factory, redis_standalone):
    """DCSLOG_METRICS_PORT: every series on an address of its own, which serves nothing else; the API
    port's /metrics stays totals-only."""
    port = free_port()
    with dcslog_server_factory(metrics_port=str(port)) as server:
        instance_id, _ = _harvested_instance(server, redis_standalone)
        listener = f"http://127.0.0.1:{port}"
        response = _scrape(listener + "/metrics")
        assert response.status_code == 200 and f'instance_id="{instance_id}"' in response.text
        _families(response.text)
        assert instance_id not in _scrape(server.url + "/metrics").text
        token = server.cli("token", "create", "--project-id", "proj-a")["token"]
        response = _scrape(listener + "/v2/proj-a/instances", **{"X-Auth-Token": token})
        assert response.status_code == 404 and response.json()["error_code"] == "DCS.4001"
        assert _scrape(listener + "/health").status_code == 404
    with pytest.raises(httpx.ConnectError):  # it stops with the server
        _scrape(listener + "/metrics")
    # With a token set as well, the listener asks for it too.
    with dcslog_server_factory(metrics_port=str(port), metrics_token=METRICS_TOKEN):
        assert _scrape(listener + "/metrics").status_code == 401
        assert _scrape(listener + "/metrics", Authorization=f"Bearer {METRICS_TOKEN}").status_code == 200
