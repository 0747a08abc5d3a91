"""Slow-log top (SPEC §7): the slow log of a window grouped by fingerprint, command or node.

Every expected group is computed here by brute force from the entries themselves — read back from
the nodes' own SLOWLOG GET, or the entries the test made up and handed to the harvester's store —
never from what dcslog answered."""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import random
import sqlite3
import time
from collections import defaultdict
from dataclasses import dataclass

import httpx
import pytest
from sqlalchemy import select

from dcslog.db.models import Instance, Replication
from dcslog.db.session import create_engine, create_sessionmaker
from dcslog.keys import Keyring, load_server_key
from dcslog.redis.connection import CLIENT_NAME
from dcslog.redis.slowlog import NodeIdentity, NodeSlowlog, SlowEntry, fingerprint
from dcslog.services import slowlog_harvest
from dcslog.testing.waiting import wait_for
from tests.dcslog_fixtures import started_server
from tests.test_client_cli import configure_client, run

EVERYTHING = ["--slowlog-log-slower-than", "0", "--slowlog-max-len", "100000"]
HOUR_MS = 3_600_000
GROUP_BYS = ("fingerprint", "command", "node")
SORT_KEYS = ("total", "count", "max")


@dataclass(frozen=True)
class Entry:
    node: str  # replication_id
    start_ms: int
    duration_us: int
    args: tuple[str, ...]


def now_ms() -> int:
    return int(time.time() * 1000)


class Api:
    def __init__(self, server, instance_id: str, project_id: str = "proj-a"):
        self.server = server
        self.token = server.cli("token", "create", "--project-id", project_id)["token"]
        self.root = f"{server.url}/v2/{project_id}"
        self.base = f"{self.root}/instances/{instance_id}"

    def top_response(self, **params) -> httpx.Response:
        return httpx.get(f"{self.base}/slowlog/top", params=params, headers={"X-Auth-Token": self.token})

    def top(self, **params) -> dict:
        response = self.top_response(**params)
        assert response.status_code == 200, response.text
        return response.json()

    def entries(self) -> dict[int, dict]:
        """Every stored entry by id (ListSlowlog), to look up a group's sample."""
        body = httpx.get(f"{self.base}/slowlog", params={"start_time": 0, "end_time": now_ms() + 86_400_000,
                                                          "limit": 1000}, headers={"X-Auth-Token": self.token}).json()
        assert body["total_num"] == len(body["slowlogs"])
        return {e["id"]: e for e in body["slowlogs"]}

    def node_ids(self) -> dict[str, str]:
        """host:port → replication_id."""
        body = httpx.get(f"{self.root}/instance/{self.base.rsplit('/', 1)[1]}/groups",
                         headers={"X-Auth-Token": self.token}).json()
        return {f"{r['replication_ip']}:{r['replication_port']}": r["replication_id"]
                for g in body["group_list"] for r in g["replication_list"]}


# -- the reference ---------------------------------------------------------------------------------

def key_of(entry: Entry, group_by: str) -> str:
    if group_by == "node":
        return entry.node
    if group_by == "command":
        return entry.args[0].upper() if entry.args else ""
    return fingerprint(list(entry.args))


def utc(ms: int) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(ms // 1000))


def reference(entries: list[Entry], lo: int, hi: int, group_by: str, sort_key: str) -> list[dict]:
    """Every group of the window [lo, hi], sorted as the endpoint documents (largest first, ties by key),
    each with its members for the sample check."""
    members: dict[str, list[Entry]] = defaultdict(list)
    for entry in entries:
        if lo <= entry.start_ms <= hi:
            members[key_of(entry, group_by)].append(entry)
    groups = []
    for key, group in members.items():
        durations = sorted(e.duration_us for e in group)
        n, total = len(durations), sum(durations)
        # Nearest rank, by its definition: the smallest duration that at least 99 % of them do not exceed.
        p99 = next(d for i, d in enumerate(durations) if (i + 1) * 100 >= 99 * n)
        groups.append({"key": key, "count": n, "total_ms": round(total / 1000, 3),
                       "max_ms": round(durations[-1] / 1000, 3), "avg_ms": round(total / n / 1000, 3),
                       "p99_ms": round(p99 / 1000, 3), "first_time": utc(min(e.start_ms for e in group)),
                       "last_time": utc(max(e.start_ms for e in group)),
                       "_order": {"total": total, "count": n, "max": durations[-1]}[sort_key], "_members": group})
    return sorted(groups, key=lambda g: (-g["_order"], g["key"]))


def public(group: dict) -> dict:
    """A reference group as the endpoint shows it (without its sample id)."""
    return {k: v for k, v in group.items() if not k.startswith("_")}


def check_top(api: Api, entries: list[Entry], lo: int, hi: int, group_by: str, sort_key: str, limit: int,
              stored: dict[int, dict]) -> None:
    expected = reference(entries, lo, hi, group_by, sort_key)
    body = api.top(start_time=lo, end_time=hi, group_by=group_by, sort_key=sort_key, limit=limit)
    where = (lo, hi, group_by, sort_key, limit)
    assert body["total_num"] == len(expected), where
    assert (body["start_time"], body["end_time"]) == (lo, hi)
    got = [{k: v for k, v in g.items() if k != "sample_id"} for g in body["groups"]]
    assert got == [public(g) for g in expected[:limit]], where
    for group, want in zip(body["groups"], expected, strict=False):
        # The sample is one of the group's entries in the window, and its slowest.
        sample = stored[group["sample_id"]]
        slowest = max(e.duration_us for e in want["_members"])
        assert sample["duration"] == _ms_text(slowest), where
        assert any((e.node, e.start_ms, e.duration_us, " ".join(e.args)) == (
            sample["replication_id"], _epoch_ms(sample["start_time"]), slowest, sample["command"])
            for e in want["_members"]), where


def _ms_text(micros: int) -> str:
    whole, rest = divmod(micros, 1000)
    return f"{whole}.{rest:03d}".rstrip("0").rstrip(".") if rest else str(whole)


def _epoch_ms(utc_text: str) -> int:
    return int(time.mktime(time.strptime(utc_text, "%Y-%m-%dT%H:%M:%SZ")) - time.timezone) * 1000


def windows(entries: list[Entry], rng: random.Random, count: int) -> list[tuple[int, int]]:
    """Random windows, most with edges inside hours, plus exact hours and single milliseconds."""
    times = sorted(e.start_ms for e in entries)
    first, last = times[0] - HOUR_MS, times[-1] + HOUR_MS
    out = [(0, last), (times[0], times[-1]), (times[len(times) // 2], times[len(times) // 2])]
    hour = times[len(times) // 2] - times[len(times) // 2] % HOUR_MS
    for at in (times[len(times) // 3], times[len(times) // 4]):  # ending or starting right at an hour
        top = at - at % HOUR_MS
        out += [(top - 5 * HOUR_MS + 1, top), (top - 5 * HOUR_MS, top - 1), (top, top + 7 * HOUR_MS),
                (top + 1, top + 7 * HOUR_MS), (top - 1000, top + HOUR_MS - 1000)]
    out += [(hour, hour + HOUR_MS - 1), (hour, hour + HOUR_MS), (hour + 1, hour + 3 * HOUR_MS - 1),
            (hour - HOUR_MS + 1, hour + 1000)]
    while len(out) < count:
        out.append(tuple(sorted(rng.sample(range(first, last), 2))))  # type: ignore[arg-type]
    return out


# -- real nodes ------------------------------------------------------------------------------------

def ring(node, client) -> list[tuple[int, int, tuple[str, ...]]]:
    """The node's slow log as Redis reports it, without dcslog's own commands: (start ms, µs, args)."""
    client.set_response_callback("SLOWLOG GET", lambda response, **options: response)
    raw = client.execute_command("SLOWLOG", "GET", 100000)
    return [(int(r[1]) * 1000, int(r[2]), tuple(str(a) for a in r[3])) for r in raw
            if not (len(r) > 5 and str(r[5]) == CLIENT_NAME)]


def make_slow_commands(client, rng: random.Random, count: int, *, reads_only: bool = False) -> None:
    for i in range(count):
        choice = rng.randrange(8)
        if choice == 0 or reads_only:
            client.get(f"key:{rng.randrange(50)}")
        elif choice == 1:
            client.set(f"key:{rng.randrange(50)}", "v" * rng.randint(1, 20_000))
        elif choice == 2:
            client.hset(f"hash:{i % 7}", mapping={f"f{j}": j for j in range(rng.randint(1, 40))})
        elif choice == 3:
            client.mget([f"key:{j}" for j in range(rng.randint(1, 30))])
        elif choice == 4:
            client.execute_command("DEBUG", "SLEEP", "0.00" + str(rng.randint(1, 3)))
        elif choice == 5:
            client.config_get("maxmemory")
        elif choice == 6:
            client.incr(f"counter:{i % 3}")
        else:
            client.exists(*(f"key:{j}" for j in range(rng.randint(1, 2))))


@pytest.mark.parametrize("backend_env", ["embedded", "postgres-s3"], indirect=True)
def test_top_of_real_nodes_matches_their_slowlog(backend_env, dcslog_env, redis_replicated, monkeypatch):
    """Every command of three real nodes is logged (slowlog-log-slower-than 0); the harvester stores
    them; every grouping and sort over windows that hold the whole hour (the hourly rollups) and
    windows cut inside it (the entries) agrees with a brute force over each node's SLOWLOG GET."""
    rng = random.Random(15)
    with started_server(monkeypatch) as server, contextlib.ExitStack() as stack:
        clients, readers = {}, {}
        for node in redis_replicated.nodes:  # connections opened before the reset: their set-up is not logged
            client = stack.enter_context(contextlib.closing(node.client()))
            # The test reads the rings under dcslog's own client name: its SLOWLOG GETs are left out
            # of the rings it reads, as the harvester leaves them out of what it stores.
            readers[node.address] = stack.enter_context(contextlib.closing(node.client(client_name=CLIENT_NAME)))
            readers[node.address].ping()
            client.config_set("slowlog-log-slower-than", 0)
            client.config_set("slowlog-max-len", 100000)
            client.execute_command("SLOWLOG", "RESET")
            clients[node.address] = client
        api = Api(server, server.import_instance(redis_replicated.primary.url)["instance_id"])
        ids = api.node_ids()
        for _ in range(3):  # three harvests: the rollups add up across them
            for node in redis_replicated.nodes:
                make_slow_commands(clients[node.address], rng, 60, reads_only=node is not redis_replicated.primary)
            time.sleep(0.3)  # the replicas apply the writes (their slow log has them too)
            server.harvest()

        def rings() -> list[Entry]:
            return [Entry(ids[node.address], start, micros, args) for node in redis_replicated.nodes
                    for start, micros, args in ring(node, readers[node.address])]
        # The nodes keep logging replication chatter (REPLCONF ACK, PING): the rings are what was
        # stored once a harvest, a read, a harvest and a read see the same entries.
        entries: list[Entry] = []
        for _ in range(20):
            server.harvest()
            entries = rings()
            server.harvest()
            if rings() == entries:
                break
        stored = api.entries()
        assert len(stored) == len(entries) >= 3 * 3 * 60
        assert len({e.node for e in entries}) == 3
        times = sorted(e.start_ms for e in entries)
        hour = times[0] - times[0] % HOUR_MS
        cases = [(hour - HOUR_MS, times[-1] + 2 * HOUR_MS),  # the whole hour(s): rollups only
                 (0, now_ms() + 60_000), (times[0], times[-1]),  # edges inside the hour: entries only
                 (times[len(times) // 3], times[2 * len(times) // 3]), (times[5], times[5])]
        for lo, hi in cases:
            for group_by in GROUP_BYS:
                for sort_key in SORT_KEYS:
                    check_top(api, entries, lo, hi, group_by, sort_key, 100, stored)
        check_top(api, entries, cases[0][0], cases[0][1], "fingerprint", "count", 2, stored)
        # Defaults: the hour up to now, by fingerprint, by total, ten groups.
        body = api.top()
        assert body["end_time"] - body["start_time"] == HOUR_MS and abs(body["end_time"] - now_ms()) < 60_000
        expected = reference(entries, body["start_time"], body["end_time"], "fingerprint", "total")
        assert [g["key"] for g in body["groups"]] == [g["key"] for g in expected[:10]]
        assert body["total_num"] == len(expected) > 10 and len(body["groups"]) == 10


# -- made-up entries over days, through the harvester's store ---------------------------------------

COMMANDS = [("GET", "user:1"), ("get", "user:2"), ("SET", "k", "v"), ("HGETALL", "h"), ("CONFIG", "GET", "maxmemory"),
            ("MGET", "a", "b", "c", "d", "e"), ("DEL", "x"), ("PING",), ("EVALSHA", "3f2a", "1", "lock:1")]


def made_up(rng: random.Random, nodes: list[str], count: int, oldest_ms: int, span_ms: int) -> list[Entry]:
    out = []
    for _ in range(count):
        # Ties on purpose (a few fixed durations), and a long tail.
        micros = rng.choice([10_000, 10_000, 25_000, int(10_000 + rng.lognormvariate(math.log(3_000), 1.4))])
        start_ms = oldest_ms + rng.randrange(span_ms)
        edge = rng.random()  # some exactly at the start of their hour, some in its last second
        start_ms = start_ms - start_ms % HOUR_MS + (0 if edge < 0.1 else HOUR_MS - 1000 if edge < 0.15 else
                                                    start_ms % HOUR_MS)
        start_s = min(max(start_ms, oldest_ms), oldest_ms + span_ms - 1000) // 1000  # within the span
        out.append(Entry(rng.choice(nodes), start_s * 1000, micros, rng.choice(COMMANDS)))
    return out


def store(settings, entries: list[Entry], batches: int, *, fingerprints_only: bool = False) -> None:
    """Hand ``entries`` to the harvester's store, ``batches`` reads per node in no particular time
    order, as if each node had returned them (ids rising per node and run)."""
    async def go() -> None:
        engine = create_engine(settings.effective_database_url)
        sessionmaker = create_sessionmaker(engine)
        try:
            async with sessionmaker() as session:
                instance = (await session.scalars(select(Instance))).one()
                nodes = {r.id: r for r in await session.scalars(select(Replication))}
            for node_id, node in nodes.items():
                mine = [e for e in entries if e.node == node_id]
                async with sessionmaker() as session:
                    cursor = await slowlog_harvest.queries.harvest_cursors(session, {node_id})
                next_id = 1_000_000  # ids of their own (another run_id), far from the real ones
                for b in range(batches):
                    batch = mine[b::batches]
                    slow = [SlowEntry(next_id + i, e.start_ms // 1000, e.duration_us, list(e.args), "10.0.0.1:5000",
                                      "app") for i, e in enumerate(batch)]
                    next_id += len(batch)
                    identity = NodeIdentity("f" * 40, "master", None, 100)
                    await slowlog_harvest._store(sessionmaker, instance, node, cursor[node_id],
                                                 NodeSlowlog(identity, slow, 0), None,  # type: ignore[arg-type]
                                                 fingerprints_only)
        finally:
            await engine.dispose()
    asyncio.run(go())


@pytest.mark.parametrize("backend_env", ["embedded", "postgres-s3"], indirect=True)
def test_top_over_days_matches_a_brute_force_reference(backend_env, dcslog_env, redis_replicated, monkeypatch):
    """1,500 entries over three days on three nodes, stored in several batches per node (the rollups
    add up across harvests): random windows, most with both edges inside an hour, every grouping
    and sort, against the brute force over the same entries."""
    rng = random.Random(2026)
    with started_server(monkeypatch) as server:
        api = Api(server, server.import_instance(redis_replicated.primary.url)["instance_id"])
        server.harvest()  # the nodes' cursors; their own slow logs are empty at the default threshold
        nodes = sorted(api.node_ids().values())
        entries = made_up(rng, nodes, 1500, now_ms() - 3 * 86_400_000, 3 * 86_400_000)
        store(server.settings, entries, batches=4)
        stored = api.entries() if len(entries) <= 1000 else {}
        if not stored:  # more than a page: by id, straight from ListSlowlog's pages
            stored = {}
            for offset in range(0, len(entries), 1000):
                page = httpx.get(f"{api.base}/slowlog", params={
                    "start_time": 0, "end_time": now_ms() + 60_000, "limit": 1000, "offset": offset},
                    headers={"X-Auth-Token": api.token}).json()
                stored.update({e["id"]: e for e in page["slowlogs"]})
        assert len(stored) == len(entries)
        for i, (lo, hi) in enumerate(windows(entries, rng, 30)):
            group_by, sort_key = GROUP_BYS[i % 3], SORT_KEYS[(i // 3) % 3]
            check_top(api, entries, lo, hi, group_by, sort_key, 100, stored)
            check_top(api, entries, lo, hi, GROUP_BYS[(i + 1) % 3], SORT_KEYS[(i + 2) % 3], 3, stored)


def test_rollups_go_with_the_entries_at_retention(dcslog_server, redis_standalone):
    api = Api(dcslog_server, dcslog_server.import_instance(redis_standalone.url)["instance_id"])
    dcslog_server.harvest()
    [node] = api.node_ids().values()
    rng = random.Random(1)
    old = made_up(rng, [node], 50, now_ms() - 9 * 86_400_000, 86_400_000)
    recent = made_up(rng, [node], 50, now_ms() - 3_600_000, 3_000_000)
    store(dcslog_server.settings, old + recent, batches=2)
    db_path = dcslog_server.settings.data_dir / "dcslog.db"
    with contextlib.closing(sqlite3.connect(db_path)) as db:
        before = db.execute("SELECT sum(entries) FROM slowlog_hour_groups").fetchone()[0]
    assert before == 100
    assert api.top(start_time=0, group_by="node")["groups"][0]["count"] == 100

    async def sweep() -> None:
        engine = create_engine(dcslog_server.settings.effective_database_url)
        try:
            async with create_sessionmaker(engine)() as session:
                await slowlog_harvest.sweep_slowlog(session, 7)
        finally:
            await engine.dispose()
    asyncio.run(sweep())
    with contextlib.closing(sqlite3.connect(db_path)) as db:
        assert db.execute("SELECT sum(entries), min(hour_ms) FROM slowlog_hour_groups").fetchone()[0] == 50
        assert db.execute("SELECT count(*) FROM slowlog_entries").fetchone() == (50,)
    [group] = api.top(start_time=0, group_by="node")["groups"]
    assert group == {**public(reference(recent, 0, now_ms(), "node", "total")[0]), "sample_id": group["sample_id"]}


def test_errors(dcslog_server, redis_standalone):
    instance_id = dcslog_server.import_instance(redis_standalone.url)["instance_id"]
    api = Api(dcslog_server, instance_id)
    for params, name in [({"group_by": "client"}, "group_by"), ({"sort_key": "avg"}, "sort_key"),
                         ({"sort_key": "duration"}, "sort_key"), ({"limit": 0}, "limit"), ({"limit": 101}, "limit"),
                         ({"start_time": "x"}, "start_time"), ({"end_time": "-1"}, "end_time")]:
        response = api.top_response(**params)
        body = response.json()
        assert response.status_code == 400 and body["error_code"] == "DCS.4800", params
        assert body["error_msg"] == f"Invalid {name} in the request." and name in body["error_ext_msg"], body
    response = api.top_response(start_time=2000, end_time=1999)
    assert response.status_code == 400 and response.json() == {
        "error_code": "DCS.4025", "error_msg": "The end time must not be earlier than the start time.",
        "error_ext_msg": None}
    dcslog_server.credentials("proj-b")
    response = Api(dcslog_server, instance_id, project_id="proj-b").top_response()
    assert response.status_code == 404 and response.json()["error_code"] == "DCS.3022"
    response = httpx.get(f"{api.root}/instances/not-a-uuid/slowlog/top", headers={"X-Auth-Token": api.token})
    assert response.status_code == 400 and response.json()["error_code"] == "DCS.4061"
    assert httpx.get(f"{api.base}/slowlog/top").json()["error_code"] == "DCS.1003"
    body = api.top(start_time=0)  # nothing harvested: no group
    assert body == {"total_num": 0, "groups": [], "start_time": 0, "end_time": body["end_time"]}


# -- fingerprints only -----------------------------------------------------------------------------

SECRET = "s3cr3t-9f1c"


def secrets_in_database(db_path) -> list[str]:
    """Where the secret is in the database: any column of any slow-log row, or the files' bytes."""
    found = []
    with contextlib.closing(sqlite3.connect(db_path)) as db:
        for table in ("slowlog_entries", "slowlog_hour_groups"):
            for row in db.execute(f"SELECT * FROM {table}"):
                found += [f"{table}: {row}" for value in row if SECRET in str(value)]
    for path in db_path.parent.glob(db_path.name + "*"):  # the database, its WAL
        if SECRET.encode() in path.read_bytes():
            found.append(path.name)
    return found


def test_fingerprints_only_never_stores_arguments(dcslog_server_factory, redis_node_factory):
    node = redis_node_factory("127.0.0.2", args=EVERYTHING)
    with dcslog_server_factory(slowlog_interval="0.5", slowlog_fingerprints_only="true") as server, \
            contextlib.closing(node.client()) as client:
        api = Api(server, server.import_instance(node.url)["instance_id"])
        client.set(f"user:{SECRET}", f"password={SECRET}")
        client.hset(f"h:{SECRET}", SECRET, SECRET)
        client.get(f"user:{SECRET}")
        wait_for(lambda: {e["command"] for e in api.entries().values()} >= {"SET ? ?", "HSET ? ? ?", "GET ?"},
                 timeout=30, what="the worker's harvest")
        for entry in api.entries().values():
            assert SECRET not in json.dumps(entry)
            assert entry["command"] == entry["fingerprint"]  # ListSlowlog shows the fingerprint as the command
        assert {"SET ? ?", "HSET ? ? ?", "GET ?"} <= {g["key"] for g in api.top(start_time=0, limit=100)["groups"]}
        db_path = server.settings.data_dir / "dcslog.db"
        assert secrets_in_database(db_path) == []
        # The check can fail: a harvest that keeps arguments puts the secret where it looks.
        client.set(f"other:{SECRET}", "x")

        async def harvest_with_arguments() -> None:
            engine = create_engine(server.settings.effective_database_url)
            try:
                keyring = Keyring(load_server_key(server.settings))
                await slowlog_harvest.harvest_all(create_sessionmaker(engine), keyring, 5, fingerprints_only=False)
            finally:
                await engine.dispose()
        asyncio.run(harvest_with_arguments())
        assert secrets_in_database(db_path)


# -- the CLI ---------------------------------------------------------------------------------------

def test_the_slowlog_top_command(dcslog_server, redis_replicated, monkeypatch, tmp_path, capsys):
    api = Api(dcslog_server, dcslog_server.import_instance(redis_replicated.primary.url)["instance_id"])
    instance_id = api.base.rsplit("/", 1)[1]
    configure_client(dcslog_server, monkeypatch, tmp_path)
    dcslog_server.harvest()
    nodes = api.node_ids()
    entries = made_up(random.Random(5), sorted(nodes.values()), 300, now_ms() - 1_800_000, 1_700_000)
    store(dcslog_server.settings, entries, batches=2)

    code, out, err = run(capsys, "slowlog", "top", "--instance", instance_id)
    assert code == 0, err
    lines = out.splitlines()
    assert lines[0].split() == ["FINGERPRINT", "COUNT", "TOTAL_MS", "AVG_MS", "P99_MS", "MAX_MS", "LAST_TIME",
                                "SAMPLE_ID"]
    body = api.top(start_time=0)
    expected = reference(entries, 0, now_ms(), "fingerprint", "total")
    assert [line.rsplit(None, 7)[0] for line in lines[1:-1]] == [g["key"] for g in expected[:10]]
    assert lines[-1].startswith(f"{min(10, len(expected))} of {len(expected)} groups by total, ")
    assert body["total_num"] == len(expected)

    code, out, err = run(capsys, "slowlog", "top", "--instance", instance_id, "--since", "2h", "--group-by", "node",
                         "--sort", "count", "--json")
    assert code == 0, err
    answer = json.loads(out)
    want = reference(entries, answer["start_time"], answer["end_time"], "node", "count")
    assert [(g["key"], g["count"]) for g in answer["groups"]] == [(g["key"], g["count"]) for g in want]
    code, out, err = run(capsys, "slowlog", "top", "--instance", instance_id, "--since", "2h", "--group-by", "node")
    assert code == 0, err
    addresses = {v: k for k, v in nodes.items()}  # a node is shown by its address
    assert out.splitlines()[0].split()[0] == "NODE"
    assert [line.split()[0] for line in out.splitlines()[1:-1]] == [
        addresses[g["key"]] for g in reference(entries, 0, now_ms(), "node", "total")]
    code, out, _ = run(capsys, "slowlog", "top", "--instance", instance_id, "--from", "3h", "--to", "2h")
    assert code == 0 and out.splitlines()[0] == "(none)" and out.splitlines()[-1].startswith("0 of 0 groups")
    with pytest.raises(SystemExit) as exit_:
        run(capsys, "slowlog", "top", "--instance", instance_id, "--group-by", "client")
    assert exit_.value.code == 2 and "--group-by" in capsys.readouterr().err
    code, _, err = run(capsys, "slowlog", "top", "--instance", instance_id, "--limit", "101")
    assert code == 1 and "limit" in err
    # The plain slow log is still `dcslog slowlog`.
    code, out, err = run(capsys, "slowlog", "--instance", instance_id, "--since", "2h", "--json")
    assert code == 0 and json.loads(out)["total_num"] == len(entries)


def test_the_migration_rolls_up_what_was_harvested_before_it(tmp_path):
    from alembic import command

    from dcslog.db.session import alembic_config

    db_path = tmp_path / "dcslog.db"
    config = alembic_config(f"sqlite+aiosqlite:///{db_path}")
    command.upgrade(config, "0008")
    entries = made_up(random.Random(9), ["node-a", "node-b"], 400, now_ms() - 86_400_000, 86_400_000)
    with contextlib.closing(sqlite3.connect(db_path)) as db, db:
        db.executemany(
            "INSERT INTO slowlog_entries (instance_id, replication_id, run_id, redis_id, start_time_ms, duration_us, "
            "command, command_name, fingerprint, shard_name, node_ip, node_port, node_role, client_addr, client_name) "
            "VALUES ('i', ?, 'r', ?, ?, ?, ?, ?, ?, '', '10.0.0.1', 6379, 'master', '', '')",
            [(e.node, i, e.start_ms, e.duration_us, " ".join(e.args), e.args[0].upper(), fingerprint(list(e.args)))
             for i, e in enumerate(entries)])
    command.upgrade(config, "head")
    with contextlib.closing(sqlite3.connect(db_path)) as db:
        rows = db.execute("SELECT hour_ms, replication_id, fingerprint, entries, total_us, max_us, first_ms, last_ms "
                          "FROM slowlog_hour_groups").fetchall()
    expected: dict[tuple[int, str, str], list[Entry]] = defaultdict(list)
    for e in entries:
        expected[e.start_ms - e.start_ms % HOUR_MS, e.node, fingerprint(list(e.args))].append(e)
    assert sorted(rows) == sorted(
        (*key, len(group), sum(e.duration_us for e in group), max(e.duration_us for e in group),
         min(e.start_ms for e in group), max(e.start_ms for e in group)) for key, group in expected.items())
    command.downgrade(config, "0008")  # and back
    with contextlib.closing(sqlite3.connect(db_path)) as db:
        assert db.execute("SELECT count(*) FROM sqlite_master WHERE name = 'slowlog_hour_groups'").fetchone() == (0,)
