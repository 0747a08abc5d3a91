"""What a process reports about itself: Prometheus metrics it measures, and logs that carry the request id.

Metrics measured in-process (requests, collections) live in ``REGISTRY`` and
are served by the API's ``/metrics`` (and by ``dcslog worker --metrics-port``);
metrics about shared state (slow-log harvests, the job queue) are read from the
database at scrape time (``api/metrics.py``).
"""

from __future__ import annotations

import contextvars
import json
import logging
import time

from prometheus_client import CollectorRegistry, Counter, Histogram

REGISTRY = CollectorRegistry(auto_describe=True)

REQUESTS = Counter("dcslog_http_requests", "HTTP requests answered, by route template, method and status.",
                   ["route", "method", "status"], registry=REGISTRY)
REQUEST_SECONDS = Histogram("dcslog_http_request_duration_seconds",
                            "Seconds from a request's arrival to its response headers, by route template.",
                            ["route", "method"], registry=REGISTRY,
                            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10))
COLLECTIONS = Counter("dcslog_collected_files", "Run-log files collected, by outcome.", ["status"], registry=REGISTRY)
COLLECTED_BYTES = Counter("dcslog_collected_bytes", "Bytes of run logs collected and published.", registry=REGISTRY)
COLLECTION_SECONDS = Histogram("dcslog_collection_duration_seconds",
                               "Seconds to collect and publish one day of one replica's run log.", registry=REGISTRY,
                               buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300))

# The request being handled, for every log line written on its behalf.
request_id_var: contextvars.ContextVar[str] = contextvars.ContextVar("request_id", default="-")


class RequestIdFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = request_id_var.get()
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, request_id (and the exception, if any)."""

    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z",
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "request_id": getattr(record, "request_id", "-"),
        }
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False)


def configure_logging(level: str, fmt: str) -> None:
    handler = logging.StreamHandler()
    handler.addFilter(RequestIdFilter())
    handler.setFormatter(JsonFormatter() if fmt == "json" else logging.Formatter(
        "%(asctime)s %(levelname)s %(name)s [%(request_id)s] %(message)s"))
    handler._dcslog = True  # ours, to replace on a second call; other handlers (pytest's, say) stay
    root = logging.getLogger()
    root.handlers[:] = [h for h in root.handlers if not getattr(h, "_dcslog", False)] + [handler]
    root.setLevel(level.upper())
    # Every command applies migrations first; their INFO lines would bury its own output (errors still show).
    logging.getLogger("alembic.runtime.migration").setLevel(max(root.level, logging.WARNING))
