"""What a process reports about itself: Prometheus metrics it measures, and logs that carry the request id.

Metrics measured in-process (requests, collections) live in ``REGISTRY`` and
are served by the API's ``/metrics`` (and by ``dcslog worker --metrics-port``);
metrics about shared state (slow-log harvests, the job queue) are read from the
database at scrape time (``api/metrics.py``).
"""

from __future__ import annotations

import bisect
import contextvars
import itertools
import json
import logging
import math
import secrets
import sys
import threading
import time
from typing import cast

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import CounterMetricFamily, HistogramMetricFamily
from prometheus_client.utils import floatToGoString

REGISTRY = CollectorRegistry(auto_describe=True)

COLLECTIONS = Counter("dcslog_collected_files", "Run-log files collected, by outcome.", ["status"], registry=REGISTRY)
COLLECTED_BYTES = Counter("dcslog_collected_bytes", "Bytes of run logs collected and published.", registry=REGISTRY)
COLLECTION_SECONDS = Histogram("dcslog_collection_duration_seconds",
                               "Seconds to collect and publish one day of one replica's run log.", registry=REGISTRY,
                               buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300))
INLINE_READ_FALLBACKS = Counter(
    "dcslog_inline_read_fallbacks",
    "Reads SQLite answered busy on the event loop, sent through aiosqlite's thread instead.", registry=REGISTRY)

JOURNAL_WAITS = Counter(
    "dcslog_audit_journal_waits",
    "Audit-journal commits SQLite answered busy on the event loop, sent through aiosqlite's thread to wait "
    "their turn instead.", registry=REGISTRY)

HTTP_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


class RequestMetrics:
    """``dcslog_http_requests_total`` (route, method, status) and
    ``dcslog_http_request_duration_seconds`` (route, method), kept as plain dict and list
    updates on the event loop and turned into metric families at scrape time:
    prometheus_client's own children take a lock on every inc() and observe(), a
    measurable share of a small request."""

    BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)

    def __init__(self) -> None:
        self._counts: dict[tuple[str, str, int], int] = {}
        self._latency: dict[tuple[str, str], list[float]] = {}  # per bucket (and +Inf), then the sum

    def count(self, route: str, method: str, status: int, seconds: float) -> None:
        if method not in HTTP_METHODS:
            method = "other"  # a client picks the method: it must not pick the number of series
        key = (route, method, status)
        self._counts[key] = self._counts.get(key, 0) + 1
        latency = self._latency.get((route, method))
        if latency is None:
            latency = self._latency[(route, method)] = [0] * (len(self.BUCKETS) + 2)
        latency[bisect.bisect_left(self.BUCKETS, seconds)] += 1  # the first bucket whose bound >= seconds
        latency[-1] += seconds

    def collect(self):
        requests = CounterMetricFamily("dcslog_http_requests",
                                       "HTTP requests answered, by route template, method and status.",
                                       labels=["route", "method", "status"])
        for (route, method, status), n in list(self._counts.items()):
            requests.add_metric([route, method, str(status)], n)
        yield requests
        duration = HistogramMetricFamily(
            "dcslog_http_request_duration_seconds",
            "Seconds from a request's arrival until its response is sent, by route template.",
            labels=["route", "method"])
        for (route, method), latency in list(self._latency.items()):
            cumulative: float = 0
            buckets = []
            for bound, count in zip((*self.BUCKETS, math.inf), latency, strict=False):  # latency[-1]: the sum
                cumulative += count
                buckets.append((floatToGoString(bound), cumulative))
            duration.add_metric([route, method], buckets, sum_value=latency[-1])
        yield duration


REQUEST_METRICS = RequestMetrics()
REGISTRY.register(REQUEST_METRICS)


# The request being handled, for every log line written on its behalf.
request_id_var: contextvars.ContextVar[str] = contextvars.ContextVar("request_id", default="-")

# Request ids only need to be unique, not secret: a random per-process prefix and a counter
# (a uuid4 per request was a measurable share of a small request's cost).
_REQUEST_ID_PREFIX = secrets.token_hex(8)
_request_numbers = itertools.count(1)


def new_request_id() -> str:
    return f"{_REQUEST_ID_PREFIX}{next(_request_numbers):016x}"


class RequestIdFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = request_id_var.get()
        return True


class LineFormatter(logging.Formatter):
    """Our log line from its five fields; ``line()`` is also the access log's fast path
    (``log_info``), which has no LogRecord. The time's strftime runs once a second."""

    _second, _stamp = -1, ""

    def format(self, record: logging.LogRecord) -> str:
        extra = ""
        if record.exc_info:
            extra = self.formatException(record.exc_info)
        if record.stack_info:
            extra = f"{extra}\n{self.formatStack(record.stack_info)}".lstrip("\n")
        return self.line(record.created, record.levelname, record.name,
                         getattr(record, "request_id", "-"), record.getMessage(), extra)

    def _time(self, created: float, pattern: str) -> str:
        second = int(created)
        if second != self._second:
            self._second, self._stamp = second, time.strftime(pattern, self.converter(second))
        return self._stamp

    def line(self, created: float, level: str, name: str, request_id: str, message: str, extra: str = "") -> str:
        raise NotImplementedError


class TextFormatter(LineFormatter):
    """``2026-11-27 22:15:11,123 INFO logger [request_id] message`` (local time), then any traceback."""

    def line(self, created, level, name, request_id, message, extra=""):
        stamp = self._time(created, "%Y-%m-%d %H:%M:%S")
        text = f"{stamp},{int(created % 1 * 1000):03d} {level} {name} [{request_id}] {message}"
        return f"{text}\n{extra}" if extra else text


class JsonFormatter(LineFormatter):
    """One JSON object per line: time (UTC), level, logger, message, request_id (and the exception, if any)."""

    converter = time.gmtime  # type: ignore[assignment]  # logging's own documented way to log in UTC

    def line(self, created, level, name, request_id, message, extra=""):
        stamp = self._time(created, "%Y-%m-%dT%H:%M:%S")
        entry = {"time": f"{stamp}.{int(created % 1 * 1000):03d}Z", "level": level, "logger": name,
                 "message": message, "request_id": request_id}
        if extra:
            entry["exception"] = extra
        return json.dumps(entry, ensure_ascii=False)


FLUSH_SECONDS = 0.5


class BufferedStreamHandler(logging.StreamHandler):
    """Lines go to a buffered stream flushed every FLUSH_SECONDS (by one background thread)
    and at once for warnings and errors: a write(2) per access line cost a fifth of a
    small request. A SIGKILL loses at most FLUSH_SECONDS of INFO lines."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self.stream.write(self.format(record) + self.terminator)
            if record.levelno >= logging.WARNING:
                self.flush()
        except RecursionError:
            raise
        except Exception:
            self.handleError(record)

    def write_info(self, name: str, message: str) -> None:
        formatter = cast(LineFormatter, self.formatter)  # configure_logging sets one of ours
        line = formatter.line(time.time(), "INFO", name, request_id_var.get(), message)
        with self.lock:  # type: ignore[union-attr]  # StreamHandler's lock is made in __init__
            self.stream.write(line + self.terminator)


def _flush_forever() -> None:
    while True:
        time.sleep(FLUSH_SECONDS)
        for handler in logging.getLogger().handlers:
            if isinstance(handler, BufferedStreamHandler):
                handler.flush()


_flusher_lock = threading.Lock()
_flusher: threading.Thread | None = None
_fast_handler: BufferedStreamHandler | None = None  # set when ours is the root's only handler


def log_info(logger: logging.Logger, message: str) -> None:
    """``logger.info(message)`` for a line written once per request (the access log): when our
    buffered handler is the only one, the line goes straight to it, without the LogRecord,
    filters and handler chain that cost a quarter of a small request (bench/http_speed.py)."""
    handler = _fast_handler
    if handler is not None and not logger.handlers and logging.root.handlers == [handler]:
        handler.write_info(logger.name, message)
    else:
        logger.info(message)


def _stderr_handler() -> logging.StreamHandler:
    """Our own buffered writer on file descriptor 2, unless someone (pytest) has replaced sys.stderr."""
    global _flusher
    stderr = sys.__stderr__
    if sys.stderr is not stderr or stderr is None:
        return logging.StreamHandler()
    try:
        stream = open(stderr.fileno(), "w", buffering=64 * 1024, encoding="utf-8",
                      errors="backslashreplace", closefd=False)
    except (AttributeError, OSError, ValueError):
        return logging.StreamHandler()
    with _flusher_lock:
        if _flusher is None:
            _flusher = threading.Thread(target=_flush_forever, name="dcslog-log-flush", daemon=True)
            _flusher.start()
    return BufferedStreamHandler(stream)


def configure_logging(level: str, fmt: str) -> None:
    # Fields no formatter of ours prints: skip gathering them for every record (logging HOWTO, "Optimization").
    logging.logThreads = logging.logProcesses = logging.logMultiprocessing = False
    logging._srcfile = None  # no caller frame lookup (same section of the HOWTO)
    handler = _stderr_handler()
    handler.addFilter(RequestIdFilter())
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
    handler._dcslog = True  # type: ignore[attr-defined]  # ours, to replace on a second call; others (pytest's) stay
    root = logging.getLogger()
    for old in [h for h in root.handlers if getattr(h, "_dcslog", False)]:
        if isinstance(old, BufferedStreamHandler):
            old.flush()
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level.upper())
    global _fast_handler
    _fast_handler = handler if isinstance(handler, BufferedStreamHandler) else None
    # Every command applies migrations first; their INFO lines would bury its own output (errors still show).
    logging.getLogger("alembic").setLevel(max(root.level, logging.WARNING))
