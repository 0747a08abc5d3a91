"""Pure parsing/decision helpers of dcslog.redis.discovery (no server needed)."""

from __future__ import annotations

from dcslog.redis.connection import NodeConnector, _ConfigError, _parse_info, _Probe
from dcslog.redis.topology import _cluster_shards, _log_file, _parse_cluster_nodes, _replicas_of

# Redis 7 format (",hostname" after the bus port), with a failed-over old
# master (fail, no slots), its slots now on the promoted replica, a node in
# handshake, one without address, a pfail replica and a migrating marker.
CLUSTER_NODES = """\
aaa 10.0.0.1:7000@17000,host-a myself,master - 0 0 1 connected 0-5460 [5461->-bbb]
bbb 10.0.0.2:7000@17000 master - 0 0 2 connected 5461-10922
old 10.0.0.3:7000@17000 master,fail - 0 0 3 disconnected
new 10.0.0.6:7000@17000 master - 0 0 7 connected 10923-16383
r1 10.0.0.4:7000@17000 slave aaa 0 0 1 connected
r2 10.0.0.5:7000@17000 slave,fail? bbb 0 0 2 connected
r3 10.0.0.10:7000@17000 slave bbb 0 0 2 connected
hs 10.0.0.7:7000@17000 handshake - 0 0 0 disconnected
na :0@0 slave,noaddr new 0 0 3 disconnected
"""


def test_cluster_shards():
    shards = _cluster_shards(_parse_cluster_nodes(CLUSTER_NODES, "seed"))
    got = [(m.node_id, m.slots, [r.node_id for r in reps]) for m, reps in shards]
    assert got == [
        ("aaa", [(0, 5460)], ["r1"]),
        ("bbb", [(5461, 10922)], ["r2", "r3"]),  # 10.0.0.5 before 10.0.0.10
        ("new", [(10923, 16383)], []),
    ]
    assert shards[0][0].host == "10.0.0.1" and shards[0][0].port == 7000


def test_cluster_nodes_6x_format_and_lone_node():
    entries = _parse_cluster_nodes("abc :6379@16379 myself,master - 0 0 0 connected 0-16383\n", "127.0.0.9")
    (m, reps), = _cluster_shards(entries)
    assert (m.host, m.port, reps) == ("127.0.0.9", 6379, [])


def test_info_replicas():
    info = _parse_info(
        "# Replication\r\nrole:master\r\nconnected_slaves:2\r\n"
        "slave0:ip=10.0.0.2,port=6380,state=online,offset=1,lag=0\r\n"
        "slave1:ip=::1,port=6381,state=wait_bgsave,offset=0,lag=0\r\n"
        "master_replid:x\r\n"
    )
    assert info["role"] == "master"
    assert _replicas_of(info) == [("10.0.0.2", 6380), ("::1", 6381)]


def _probe(**config) -> _Probe:
    return _Probe("h", 1, config=config)


def test_log_file_rules():
    assert _log_file(_probe(logfile="/var/log/r.log", dir="/d"), "h", 1, {}) == ("/var/log/r.log", None)
    assert _log_file(_probe(logfile="../log/r.log", dir="/data/redis"), "h", 1, {}) == ("/data/log/r.log", None)
    assert _log_file(_probe(logfile="", dir="/d"), "h", 1, {}) == (None, 'logfile is "" (stdout): no log file')
    path, err = _log_file(_probe(logfile=_ConfigError("CONFIG GET not permitted: NOPERM"), dir="/d"), "h", 1, {})
    assert path is None and err.startswith("CONFIG GET not permitted")
    path, err = _log_file(_probe(logfile="r.log", dir=_ConfigError("nope")), "h", 1, {})
    assert path is None and "relative" in err
    assert _log_file(_probe(logfile=""), "h", 1, {"h:1": "/x.log"}) == ("/x.log", None)
    assert _log_file(_Probe("::1", 1, error="timed out"), "::1", 1, {"[::1]:1": "/y"}) == ("/y", None)
    path, err = _log_file(_Probe("h", 1, error="Connection refused"), "h", 1, {})
    assert path is None and "Connection refused" in err


def test_connector_hides_password():
    conn = NodeConnector("rediss://alice:pa55word@10.0.0.1:6380/3?ssl_cert_reqs=none", 1.0)
    assert conn.display("10.0.0.2", 6379) == "rediss://alice@10.0.0.2:6379"
    assert conn.scrub("bad pa55word") == "bad ***"
    assert (conn.seed_host, conn.seed_port) == ("10.0.0.1", 6380)
    assert "db" not in conn.kwargs and conn.kwargs["ssl_cert_reqs"] == "none"


def test_connect_error_reasons():
    conn = NodeConnector("redis://:pw@h:1", 1.0)
    from redis.exceptions import ConnectionError, TimeoutError

    assert conn._reason(ConnectionError(
        "Error 111 connecting to 127.0.0.2:1. Connect call failed.")) == "Connection refused"
    assert conn._reason(ConnectionError(
        "Error -2 connecting to nosuch.invalid:6379. Name or service not known.")) == "Name or service not known"
    assert conn._reason(TimeoutError("Timeout connecting to server")) == "timed out"
    assert conn._reason(ConnectionError("oops pw")) == "oops ***"
