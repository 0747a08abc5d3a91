"""Topology discovery against real redis-server processes (tests/redis_fixtures.py)."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import os
import warnings

import pytest

from dcslog.redis.connection import DiscoveryError
from dcslog.redis.topology import Topology, discover
from dcslog.testing.ports import bindable, free_redis_port
from dcslog.testing.redis_servers import TlsFiles, wait_until
from tests.redis_fixtures import cluster_context


def _same(a: Topology, b: Topology) -> bool:
    """Equal but for used memory, which moves between two calls."""
    return dataclasses.replace(a, used_memory_bytes=0) == dataclasses.replace(b, used_memory_bytes=0)


def _only_node(topo: Topology):
    assert len(topo.groups) == 1
    assert len(topo.groups[0].nodes) == 1
    return topo.groups[0].nodes[0]


async def test_standalone(redis_standalone):
    node = redis_standalone
    topo = await discover(node.url)
    assert topo.cache_mode == "single"
    assert topo.engine_version.count(".") == 1 and topo.engine_version[0].isdigit()
    assert (topo.primary_host, topo.primary_port) == (node.host, node.port)
    assert topo.db_number == 16
    assert topo.max_memory_bytes == 0
    assert topo.used_memory_bytes > 0
    n = _only_node(topo)
    assert (n.host, n.port, n.role, n.status) == (node.host, node.port, "master", "Active")
    assert n.log_file == node.log_file and os.path.isabs(n.log_file)
    assert n.log_file_error is None
    assert n.run_id == node.info("server")["run_id"]
    assert n.cluster_node_id is None
    assert topo.groups[0].shard_key == "0"


async def test_standalone_memory_and_databases(redis_node_factory):
    node = redis_node_factory(args=["--maxmemory", "64mb", "--databases", "4"])
    topo = await discover(node.url + "/2")  # a db in the URL is fine
    assert topo.max_memory_bytes == 64 * 1024 * 1024
    assert topo.db_number == 4


async def test_resp3(redis_replicated):
    rr = redis_replicated
    assert _same(await discover(rr.replicas[0].url + "?protocol=3"), await discover(rr.primary.url))


async def test_replicated_from_primary(redis_replicated):
    rr = redis_replicated
    topo = await discover(rr.primary.url)
    assert topo.cache_mode == "ha"
    assert (topo.primary_host, topo.primary_port) == (rr.primary.host, rr.primary.port)
    nodes = topo.groups[0].nodes
    assert [(n.host, n.port, n.role) for n in nodes] == [
        (rr.primary.host, rr.primary.port, "master"),
        *((r.host, r.port, "slave") for r in rr.replicas),
    ]
    assert all(n.status == "Active" for n in nodes)
    assert [n.log_file for n in nodes] == [x.log_file for x in rr.nodes]
    assert len({n.run_id for n in nodes}) == 3


async def test_replicated_through_a_replica(redis_replicated):
    rr = redis_replicated
    via_replica = await discover(rr.replicas[1].url)
    via_primary = await discover(rr.primary.url)
    assert _same(via_replica, via_primary)


async def test_unresponsive_replica_is_inactive(redis_replicated):
    rr = redis_replicated
    # A paused (SIGSTOP) replica keeps its link open, so the primary still
    # lists it, but it answers nothing.  (A replica that exits is dropped
    # from the primary's INFO at once: the kernel closes its socket.)
    rr.replicas[0].pause()
    try:
        topo = await discover(rr.primary.url, timeout=0.5)
    finally:
        rr.replicas[0].resume()
    by_addr = {n.address: n for n in topo.nodes}
    stopped = by_addr[rr.replicas[0].address]
    assert (stopped.role, stopped.status, stopped.run_id) == ("slave", "Inactive", None)
    assert stopped.log_file is None and "unreachable" in stopped.log_file_error
    assert by_addr[rr.replicas[1].address].status == "Active"


async def test_stopped_replica_disappears_from_primary(redis_replicated):
    rr = redis_replicated
    rr.replicas[0].stop()
    wait_until(lambda: rr.primary.info("replication")["connected_slaves"] == 1, 5, "primary to drop the replica")
    topo = await discover(rr.primary.url, timeout=0.5)
    assert [n.address for n in topo.nodes] == [rr.primary.address, rr.replicas[1].address]


async def test_unresponsive_replica_with_override_keeps_its_log_file(redis_replicated):
    rr = redis_replicated
    rr.replicas[0].pause()
    try:
        topo = await discover(rr.primary.url, {rr.replicas[0].address: "/var/log/x.log"}, timeout=0.5)
    finally:
        rr.replicas[0].resume()
    n = next(n for n in topo.nodes if n.address == rr.replicas[0].address)
    assert (n.status, n.log_file, n.log_file_error) == ("Inactive", "/var/log/x.log", None)


async def test_primary_down_discovered_through_replica(redis_replicated):
    rr = redis_replicated
    rr.primary.stop()
    topo = await discover(rr.replicas[0].url, timeout=1.0)
    assert topo.cache_mode == "ha"
    assert (topo.primary_host, topo.primary_port) == (rr.primary.host, rr.primary.port)
    master, *replicas = topo.groups[0].nodes
    assert (master.role, master.status, master.run_id) == ("master", "Inactive", None)
    assert [(r.address, r.role, r.status) for r in replicas] == [(rr.replicas[0].address, "slave", "Active")]
    assert replicas[0].log_file == rr.replicas[0].log_file


async def test_password_auth(redis_node_factory):
    node = redis_node_factory(password="s3cret-pw")
    topo = await discover(node.url)
    assert _only_node(topo).status == "Active"
    assert _only_node(topo).log_file == node.log_file


async def test_bad_password_is_a_discovery_error_without_the_password(redis_node_factory):
    node = redis_node_factory(password="s3cret-pw")
    with pytest.raises(DiscoveryError) as err:
        await discover(f"redis://:wrong-pass-xyz@{node.host}:{node.port}")
    msg = str(err.value)
    assert "wrong-pass-xyz" not in msg and "s3cret-pw" not in msg
    assert f"{node.host}:{node.port}" in msg


async def test_missing_password_is_a_discovery_error(redis_node_factory):
    node = redis_node_factory(password="s3cret-pw")
    with pytest.raises(DiscoveryError, match="NOAUTH|uthenticat"):
        await discover(f"redis://{node.host}:{node.port}")


async def test_acl_user(redis_node_factory):
    node = redis_node_factory()
    with contextlib.closing(node.client()) as c:
        c.execute_command("ACL", "SETUSER", "alice", "on", ">alice-pw", "~*", "+@all")
    topo = await discover(f"redis://alice:alice-pw@{node.host}:{node.port}")
    assert _only_node(topo).log_file == node.log_file
    with pytest.raises(DiscoveryError) as err:
        await discover(f"redis://alice:nope-nope@{node.host}:{node.port}")
    assert "nope-nope" not in str(err.value) and "alice@" in str(err.value)


async def test_acl_user_without_config_permission(redis_node_factory):
    node = redis_node_factory()
    with contextlib.closing(node.client()) as c:
        c.execute_command("ACL", "SETUSER", "bob", "on", ">bob-pw", "~*", "+@all", "-config")
    topo = await discover(f"redis://bob:bob-pw@{node.host}:{node.port}")
    n = _only_node(topo)
    assert n.status == "Active" and n.log_file is None
    assert n.log_file_error.startswith("CONFIG GET not permitted")
    assert topo.max_memory_bytes == 0 and topo.db_number == 16
    # ...and a path given at import fixes it.
    topo = await discover(f"redis://bob:bob-pw@{node.host}:{node.port}", {node.address: "/logs/r.log"})
    assert _only_node(topo).log_file == "/logs/r.log"


async def test_renamed_config_command(redis_node_factory, tmp_path):
    # rename-command is only accepted from a config file.
    conf = tmp_path / "renamed.conf"
    conf.write_text('rename-command CONFIG ""\n')
    node = redis_node_factory(args=["--include", str(conf)])
    n = _only_node(await discover(node.url))
    assert n.log_file is None and "CONFIG GET not available" in n.log_file_error


async def test_unreachable_seed():
    port = free_redis_port("127.0.0.2")
    with pytest.raises(DiscoveryError, match=rf"cannot connect to redis://127\.0\.0\.2:{port}: Connection refused"):
        await discover(f"redis://:pw@127.0.0.2:{port}", timeout=1.0)


async def test_bad_url():
    with pytest.raises(DiscoveryError):
        await discover("http://127.0.0.2:6379")


async def test_logfile_stdout(redis_node_factory):
    node = redis_node_factory(logfile="")
    n = _only_node(await discover(node.url))
    assert n.log_file is None
    assert n.log_file_error == 'logfile is "" (stdout): no log file'


async def test_relative_logfile_joined_with_dir(redis_node_factory):
    node = redis_node_factory(logfile="rel.log")
    n = _only_node(await discover(node.url))
    assert n.log_file == os.path.join(str(node.dir), "rel.log") == node.log_file
    assert os.path.exists(n.log_file)


async def test_override_wins(redis_standalone):
    node = redis_standalone
    n = _only_node(await discover(node.url, {node.address: "/elsewhere/redis.log"}))
    assert n.log_file == "/elsewhere/redis.log" and n.log_file_error is None
    # A key for another node changes nothing.
    n = _only_node(await discover(node.url, {"127.0.0.99:1": "/x"}))
    assert n.log_file == node.log_file


async def test_no_leaked_connections(redis_replicated):
    rr = redis_replicated

    def clients(node) -> int:
        with contextlib.closing(node.client()) as c:
            return c.info("clients")["connected_clients"]

    before = [clients(n) for n in rr.nodes]
    await asyncio.gather(*(discover(rr.replicas[0].url) for _ in range(3)))
    # Servers process the close asynchronously: allow a moment.
    wait_until(lambda: [clients(n) for n in rr.nodes] == before, 5, "connections to close")


# -- cluster -------------------------------------------------------------------


async def test_cluster(redis_cluster):
    cl = redis_cluster
    topo = await discover(cl.masters[1].url)
    assert topo.cache_mode == "cluster"
    assert topo.db_number == 1
    assert [g.shard_key for g in topo.groups] == ["0", "5461", "10923"]
    assert (topo.primary_host, topo.primary_port) == (cl.masters[1].host, cl.masters[1].port)
    for group, master, replica in zip(topo.groups, cl.masters, cl.replicas, strict=True):
        assert [(n.address, n.role, n.status) for n in group.nodes] == [
            (master.address, "master", "Active"),
            (replica.address, "slave", "Active"),
        ]
        assert [n.log_file for n in group.nodes] == [master.log_file, replica.log_file]
        assert [n.cluster_node_id for n in group.nodes] == [cl.node_ids[master.address], cl.node_ids[replica.address]]
        assert all(n.run_id for n in group.nodes)
    assert topo.used_memory_bytes > 0


async def test_cluster_through_replica(redis_cluster):
    cl = redis_cluster
    topo = await discover(cl.replicas[2].url)
    assert (topo.primary_host, topo.primary_port) == (cl.masters[2].host, cl.masters[2].port)
    assert _same(topo, await discover(cl.masters[2].url))


async def test_cluster_stopped_replica_is_inactive(redis_cluster):
    cl = redis_cluster
    replica = cl.replicas[0]
    replica.stop()
    try:
        topo = await discover(cl.masters[0].url, timeout=1.0)
        nodes = {n.address: n for n in topo.nodes}
        assert nodes[replica.address].status == "Inactive"
        assert nodes[replica.address].role == "slave"
        assert nodes[replica.address].cluster_node_id == cl.node_ids[replica.address]
        assert sum(n.status == "Active" for n in topo.nodes) == 5
    finally:
        replica.start()
        # Leave the module's cluster as we found it for later tests.
        wait_until(
            lambda: replica.info("replication").get("master_link_status") == "up", 15, "replica to resync"
        )


def _master_lines(node) -> str:
    with contextlib.closing(node.client()) as c:
        text = c.execute_command("CLUSTER", "NODES")
    return "\n".join(line for line in text.splitlines() if "master" in line.split()[2])


async def test_cluster_after_failover(tmp_path_factory):
    # A private cluster: killing a master breaks it for anyone else.
    with cluster_context(tmp_path_factory) as cl:
        old_master, promoted = cl.masters[0], cl.replicas[0]
        old_master.stop()
        wait_until(lambda: promoted.info("replication")["role"] == "master", 20, "replica to be promoted")
        # Until the seed hears of the promotion it lists the old master, still
        # owning the slots, as the shard's (Inactive) master.
        topo = await discover(cl.masters[1].url, timeout=1.0)
        if topo.groups[0].nodes[0].address == old_master.address:
            assert topo.groups[0].nodes[0].status == "Inactive"
        wait_until(
            lambda: f"{promoted.address}@" in _master_lines(cl.masters[1]), 20, "the seed to see the promotion"
        )
        topo = await discover(cl.masters[1].url, timeout=1.0)
        # The old master (now "master,fail" without slots) is no shard and no node.
        assert [g.shard_key for g in topo.groups] == ["0", "5461", "10923"]
        assert [(n.address, n.role, n.status) for n in topo.groups[0].nodes] == [
            (promoted.address, "master", "Active")
        ]
        assert old_master.address not in {n.address for n in topo.nodes}
        # Back, it rejoins as a replica of the promoted node.
        old_master.start()
        wait_until(
            lambda: old_master.info("replication").get("master_link_status") == "up", 20, "old master to rejoin"
        )
        topo = await discover(old_master.url)
        assert [(n.address, n.role) for n in topo.groups[0].nodes] == [
            (promoted.address, "master"), (old_master.address, "slave")
        ]
        assert (topo.primary_host, topo.primary_port) == (promoted.host, promoted.port)


# -- TLS -------------------------------------------------------------------------


async def test_tls(redis_node_factory, tmp_path):
    tls = TlsFiles.create(tmp_path / "tls")
    try:
        node = redis_node_factory(tls=tls, password="tls-pw")
    except RuntimeError as exc:  # a redis-server built without TLS refuses --tls-port
        if "tls" in str(exc).lower():
            pytest.skip(f"redis-server without TLS support: {exc}")
        raise
    topo = await discover(node.url)  # rediss://:tls-pw@...?ssl_cert_reqs=none
    n = _only_node(topo)
    assert n.status == "Active" and n.log_file == node.log_file
    # Plain TCP against the TLS port fails as a DiscoveryError, not a crash/hang.
    with pytest.raises(DiscoveryError):
        await discover(f"redis://:tls-pw@{node.host}:{node.port}", timeout=1.0)


# -- replicas the primary reports under an address that does not reach them ------------------------


def port_free_on(*hosts: str) -> int:
    """A port free on every one of ``hosts`` (so that nothing answers on the others)."""
    for _ in range(100):
        port = free_redis_port(hosts[0])
        if all(bindable(h, port) and bindable(h, port + 10000) for h in hosts[1:]):
            return port
    raise RuntimeError(f"no port free on all of {hosts}")


def start_unannounced(factory, primary_bind: tuple[str, ...] = ("127.0.0.9",)):
    """Primary on 127.0.0.9, replica on 127.0.0.10 without replica-announce-ip, its replication
    connection coming from 127.0.0.1 (what Linux picks for a loopback peer without
    bind-source-addr): the primary lists the replica as 127.0.0.1:PORT. Both use the same port,
    so a primary also bound to 127.0.0.1 answers at the address reported for the replica."""
    port = port_free_on("127.0.0.10", "127.0.0.9", "127.0.0.1")
    primary = factory("127.0.0.9", port=port, args=["--bind", *primary_bind])
    replica = factory("127.0.0.10", port=port, args=["--replicaof", primary.host, str(port),
                                                     "--bind-source-addr", "127.0.0.1"])
    wait_until(lambda: primary.info("replication").get("slave0", {}).get("state") == "online", 15,
               "the replica to link")
    assert primary.info("replication")["slave0"]["ip"] == "127.0.0.1"  # the situation under test
    return primary, replica


async def test_a_replica_reported_where_nothing_answers_is_inactive_and_explained(redis_node_factory):
    primary, replica = start_unannounced(redis_node_factory)
    reported = f"127.0.0.1:{replica.port}"
    topo = await discover(primary.url, timeout=1.0)
    master, node = topo.groups[0].nodes
    assert (master.address, master.status, master.address_error) == (primary.address, "Active", None)
    assert (node.address, node.role, node.status, node.run_id, node.log_file) == (
        reported, "slave", "Inactive", None, None)
    assert reported in node.address_error and primary.address in node.address_error
    assert "replica-announce-ip" in node.address_error and f"--replica-address {reported}=" in node.address_error
    assert "unreachable" in node.log_file_error


async def test_a_replica_reported_where_another_node_answers_is_not_taken_for_it(redis_node_factory):
    # The primary also listens on 127.0.0.1, on the replica's port: "the replica" answers there,
    # as the primary. Taking it for the replica would list the primary twice and read its log as the replica's.
    primary, replica = start_unannounced(redis_node_factory, primary_bind=("127.0.0.9", "127.0.0.1"))
    topo = await discover(primary.url, timeout=1.0)
    master, node = topo.groups[0].nodes
    assert master.address == primary.address and master.log_file == primary.log_file
    assert (node.address, node.status, node.run_id, node.log_file) == (f"127.0.0.1:{replica.port}", "Inactive",
                                                                      None, None)
    assert "not a replica of" in node.address_error and "replica-announce-ip" in node.address_error
    assert "another node answers" in node.log_file_error


async def test_the_replica_address_option_gives_the_real_address(redis_node_factory):
    primary, replica = start_unannounced(redis_node_factory)
    reported = f"127.0.0.1:{replica.port}"
    topo = await discover(primary.url, replica_addresses={reported: replica.address}, timeout=1.0)
    master, node = topo.groups[0].nodes
    assert (node.address, node.role, node.status, node.address_error) == (replica.address, "slave", "Active", None)
    assert node.log_file == replica.log_file and node.run_id == replica.info("server")["run_id"]
    assert node.reported_address == reported
    # A real address that is not that replica (here: the primary) is refused the same way.
    topo = await discover(primary.url, replica_addresses={reported: primary.address}, timeout=1.0)
    node = topo.groups[0].nodes[1]
    assert node.status == "Inactive" and "not a replica of" in node.address_error


async def test_importing_through_the_replica_finds_its_real_address(redis_node_factory):
    primary, replica = start_unannounced(redis_node_factory)
    topo = await discover(replica.url, timeout=1.0)
    assert [(n.address, n.role, n.status, n.address_error) for n in topo.nodes] == [
        (primary.address, "master", "Active", None), (replica.address, "slave", "Active", None)]
    assert topo.nodes[1].log_file == replica.log_file


async def test_connections_are_named_and_warn_nothing(redis_node_factory):
    """Every connection calls itself ``dcslog`` (CLIENT LIST shows who it is, and the harvester
    tells its own slow-log entries apart) in the command that authenticates it, and the asyncio
    client gets an asyncio retry (redis-py warns about a synchronous one)."""
    node = redis_node_factory(password="pw-named", args=["--slowlog-log-slower-than", "0"])
    with contextlib.closing(node.client()) as c:
        c.execute_command("SLOWLOG", "RESET")
        own = c.execute_command("CLIENT", "INFO").split()[1]  # addr=IP:PORT of this test's connection
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        await discover(node.url)
    assert [str(w.message) for w in caught] == []
    with contextlib.closing(node.client()) as c:
        ours = {own, c.execute_command("CLIENT", "INFO").split()[1]}
        c.set_response_callback("SLOWLOG GET", lambda response, **options: response)
        entries = c.execute_command("SLOWLOG", "GET", 1000)
    dcslogs = [e for e in entries if f"addr={e[4]}" not in ours]
    assert dcslogs and {e[5] for e in dcslogs} == {"dcslog"}, dcslogs
