"""The console's live node state, Timeline and Top Commands tabs (issue #15), in headless Chromium.

Real redis-server nodes are stopped, restarted and made slow; every expectation comes from what
the test did to them and from the nodes themselves (their log files, SLOWLOG GET), never from
what dcslog answered. The browser, the screenshots and the helpers are test_console.py's.
"""

from __future__ import annotations

import contextlib
import re
import statistics
import time
from collections import Counter
from datetime import UTC, datetime
from math import ceil
from pathlib import Path

from dcslog.testing.waiting import wait_for
from tests import test_console
from tests.records_reference import filter_records, merge_nodes, reference_records
from tests.test_console import off_loop, screenshot, sign_in_with_token
from tests.test_events import shutdown

# test_console's fixtures: one headless Chromium for the module, a fresh page (and its checks) per test.
browser = test_console.browser
page = test_console.page

# What a replica's run log says when a full resynchronisation starts and when it has finished:
# the run-log lines a `sync` event stands for (docs/api.md "Events").
SYNC_LINES = re.compile(r"Full resync from (master|primary)|MASTER <-> REPLICA sync: Finished with success")
HOSTILE = '<img src=x onerror="window.__pwned=1">'


def now_ms() -> int:
    return int(time.time() * 1000)


def sync_lines(node) -> int:
    return len(SYNC_LINES.findall(Path(node.log_file).read_text(errors="replace")))


def slow_entries(node) -> dict[tuple[str, int], dict]:
    """The node's slow log as SLOWLOG GET tells it, keyed by (run_id, id): a restart starts the ids again."""
    with contextlib.closing(node.client()) as client:
        run_id = client.info("server")["run_id"]
        entries = client.slowlog_get(10_000)
    out = {}
    for entry in entries:
        command = entry["command"]
        command = command.decode() if isinstance(command, bytes) else command
        out[(run_id, entry["id"])] = {"address": node.address, "start_ms": entry["start_time"] * 1000,
                                      "duration_us": entry["duration"], "name": command.split(" ")[0].upper()}
    return out


def node_rows(page) -> dict[str, tuple[str, str, str]]:
    """replication id → (address, role, status) as the Nodes box shows them."""
    return {row[0]: tuple(row[1:]) for row in page.evaluate("""() => Array.from(
        document.querySelectorAll('#node-groups li.node'), li => [li.dataset.node,
        li.querySelector('.node-address').textContent, li.dataset.role, li.querySelector('.badge').textContent])""")}


def markers(page) -> dict[str, Counter]:
    """replication id → Counter of the event types drawn on its lane."""
    lanes = page.evaluate("""() => Array.from(document.querySelectorAll('#timeline-axis g.lane'), lane =>
        [lane.dataset.lane, Array.from(lane.querySelectorAll('g.marker'), m => m.dataset.type)])""")
    return {lane: Counter(types) for lane, types in lanes}


def moment_rows(page) -> list[dict]:
    return page.evaluate("""() => Array.from(document.querySelectorAll('#moment-items > li.tl-item'), li => ({
        kind: li.dataset.kind, time_ms: Number(li.dataset.timeMs), node: li.querySelector('.rec-node').textContent,
        text: li.querySelector('.rec-msg').textContent}))""")


def refresh_state(page) -> None:
    """Press the Nodes box's Refresh and wait for its answer (the status line is written again)."""
    from playwright.sync_api import expect

    status = page.locator('[data-status="nodes"]')
    status.evaluate("element => { element.textContent = '' }")
    page.get_by_role("button", name="Refresh").click()
    expect(status).to_contain_text("As the last harvest rounds saw them")


def p99(durations: list[int]) -> int:
    """Nearest rank: the ⌈0.99 n⌉-th smallest."""
    return sorted(durations)[ceil(0.99 * len(durations)) - 1]


def test_nodes_timeline_moment_and_top_commands(dcslog_server, redis_replicated, page):
    from playwright.sync_api import expect

    server = dcslog_server
    primary, (replica, other) = redis_replicated.primary, redis_replicated.replicas
    nodes = [primary, replica, other]
    for node in nodes:
        with contextlib.closing(node.client()) as client:
            client.config_set("slowlog-max-len", 10_000)  # SLOWLOG GET must hold every entry the test counts
    imported = off_loop(server.import_instance, primary.url)
    ids = {f"{r['replication_ip']}:{r['replication_port']}": r["replication_id"]
           for g in imported["group_list"] for r in g["replication_list"]}
    off_loop(server.harvest)  # the first look: history, no events
    slow_before = {key: entry for node in nodes for key, entry in slow_entries(node).items()}
    syncs_before = {node.address: sync_lines(node) for node in nodes}

    token = off_loop(server.cli, "token", "create", "--project-id", "proj-a", "--role", "viewer")["token"]
    page.goto(f"{server.url}/console#/instances/{imported['instance_id']}")
    sign_in_with_token(page, "proj-a", token)

    # -- live state: every node Active with its role; a stopped replica is Inactive after two rounds --
    roles = {primary.address: "master", replica.address: "slave", other.address: "slave"}
    expect(page.locator("#node-groups li.node")).to_have_count(3)
    assert node_rows(page) == {ids[a]: (a, roles[a], "Active") for a in roles}
    expect(page.locator('[data-status="nodes"]')).to_contain_text("refreshed every 30 s")

    shutdown(replica)
    off_loop(server.harvest)
    refresh_state(page)
    assert node_rows(page) == {ids[a]: (a, roles[a], "Active") for a in roles}  # one round may be a blip
    off_loop(server.harvest)
    refresh_state(page)
    down = page.locator(f'#node-groups li[data-node="{ids[replica.address]}"]')
    expect(down).to_have_attribute("data-status", "Inactive")
    want = {ids[a]: (a, roles[a], "Inactive" if a == replica.address else "Active") for a in roles}
    assert node_rows(page) == want
    expect(page.locator('[data-field="status"]')).to_have_text("RUNNING")  # a replica down leaves a master
    expect(page.get_by_label("Replica").locator(f'option[value="{ids[replica.address]}"]')).to_contain_text("Inactive")
    screenshot(page, "instance-nodes.png")

    # -- it comes back: a new process (restart, node_up), and a resync, full or partial --
    time.sleep(1.1)  # the restart's time comes from the node's uptime, in whole seconds
    replica.start()
    wait_for(lambda: replica.info("replication").get("master_link_status") == "up", what="the replica's link")

    # Slow commands, one of them hostile, and a run-log line of the test's own at a known moment.
    with contextlib.closing(primary.client()) as client:
        client.config_set("slowlog-log-slower-than", 0)
        for i in range(100):
            client.set(f"key:{i}", i)
            client.get(f"key:{i}")
        client.set(HOSTILE, "v")
        client.execute_command("DEBUG", "SLEEP", "0.02")
        client.config_set("slowlog-log-slower-than", 10000)
        moment_ms = now_ms()
        client.execute_command("DEBUG", "LOG", f"console moment {HOSTILE}")
    with contextlib.closing(other.client()) as client:
        client.config_set("slowlog-log-slower-than", 0)
        for i in range(300):
            client.lrange("list", 0, i)  # a replica: reads only
        client.config_set("slowlog-log-slower-than", 10000)
    time.sleep(2.5)  # a round reads run logs up to 2 s before it: the resync's lines are older than that now
    slow = {**slow_before, **{key: entry for node in nodes for key, entry in slow_entries(node).items()}}
    off_loop(server.harvest)
    syncs = {address: count_now - syncs_before[address]
             for address, count_now in ((n.address, sync_lines(n)) for n in nodes)}

    refresh_state(page)
    expect(down).to_have_attribute("data-status", "Active")
    assert node_rows(page) == {ids[a]: (a, roles[a], "Active") for a in roles}

    # -- the Timeline: one lane per node, the replica's events on its lane --
    page.get_by_role("tab", name="Timeline").click()
    expect(page).to_have_url(re.compile(r"/timeline$"))
    status = page.locator('[data-status="timeline"]')
    expected = {ids[replica.address]: Counter({"node_down": 1, "node_up": 1, "restart": 1,
                                               "sync": syncs[replica.address]}),
                ids[primary.address]: Counter(), ids[other.address]: Counter()}
    total = sum(sum(c.values()) for c in expected.values())
    expect(status).to_contain_text(f"{total} events from")
    assert markers(page) == expected
    lane = page.locator(f'#timeline-axis g.lane[data-lane="{ids[replica.address]}"]')
    x_of = {t: float(re.match(r"translate\(([\d.]+)", lane.locator(f'g.marker[data-type="{t}"]').first
                              .get_attribute("transform"))[1]) for t in ("node_down", "restart")}
    assert x_of["node_down"] < x_of["restart"]
    expect(lane.locator("rect.down-span")).to_have_count(1)
    for kind, count in expected[ids[replica.address]].items():
        expect(page.locator(f'#timeline-legend label[data-type="{kind}"] .legend-count')).to_have_text(str(count))
    # The events list: the same events, newest first.
    rows = page.locator("#events-table tbody tr")
    expect(rows).to_have_count(total)
    assert Counter(rows.evaluate_all("rows => rows.map(r => r.dataset.type)")) == expected[ids[replica.address]]
    times = [t for t in page.locator("#events-table tbody td:first-child").all_inner_texts()]
    assert times == sorted(times, reverse=True)
    # Unticking a type takes its markers off the axis and its rows out of the list.
    page.locator("#timeline-legend").get_by_role("checkbox", name="sync").uncheck()
    expect(rows).to_have_count(total - syncs[replica.address])
    assert markers(page)[ids[replica.address]] == Counter({"node_down": 1, "node_up": 1, "restart": 1})
    page.locator("#timeline-legend").get_by_role("checkbox", name="sync").check()

    # Choosing the restart's marker (from the keyboard) shows what happened around it: the event itself
    # and the restarted node's start-up lines.
    restart = lane.locator('g.marker[data-type="restart"]')
    restart.focus()
    page.keyboard.press("Enter")
    moment_status = page.locator('[data-status="moment"]')
    expect(moment_status).to_contain_text(re.compile(r"items from .*\.$"))
    expect(page.locator("#moment-items > li.tl-event[data-type=restart]")).to_have_count(1)
    replica_lines = [r["text"] for r in moment_rows(page) if r["node"] == replica.address and r["kind"] == "runlog"]
    assert any(line.startswith("Ready to accept connections") for line in replica_lines), replica_lines
    expect(page.locator("#timeline-axis line.moment-line")).to_have_count(1)
    assert page.get_by_label("Moment", exact=True).input_value()

    # A moment typed in: ±30 s around the test's own log line, run log and slow commands only, page after
    # page with More. What it shows is what the nodes' logs and SLOWLOG GET hold in that span.
    moment_s = moment_ms // 1000 * 1000
    typed = datetime.fromtimestamp(moment_s / 1000, UTC).strftime("%Y-%m-%dT%H:%M:%S")  # the page's zone is UTC
    page.get_by_label("Moment", exact=True).fill(typed)
    page.get_by_label("Around it").select_option("30000")
    page.get_by_label("Events", exact=True).uncheck()
    page.get_by_role("button", name="Show moment").click()
    expect(moment_status).to_contain_text(re.compile(r"items from .*(\.|More for the next ones\.)$"))
    more = page.get_by_role("button", name="More", exact=True)
    for _ in range(50):
        if not more.is_visible():
            break
        before = page.locator("#moment-items > li.tl-item").count()
        more.click()
        expect(moment_status).not_to_contain_text("Loading")
        assert page.locator("#moment-items > li.tl-item").count() > before or not more.is_visible()
    start, end = moment_s - 30_000, moment_s + 30_001
    shown = moment_rows(page)
    refs = {n.address: reference_records(n.log_file, UTC) for n in nodes}
    want_log = [r["message"] for _, r in merge_nodes(
        {ids[a]: filter_records(records, start_ms=start, end_ms=end) for a, records in refs.items()})]
    assert [r["text"] for r in shown if r["kind"] == "runlog"] == want_log
    assert f"DEBUG LOG: console moment {HOSTILE}" in want_log
    want_slow = Counter(e["address"] for e in slow.values() if start <= e["start_ms"] < end)
    assert sum(want_slow.values()) > 400  # more than two pages
    assert Counter(r["node"] for r in shown if r["kind"] == "slowlog") == want_slow
    assert not [r for r in shown if r["kind"] == "event"]
    assert [r["time_ms"] for r in shown] == sorted(r["time_ms"] for r in shown)
    # The moment's mark sits between what came before it and what came at or after it.
    order = page.evaluate("""() => Array.from(document.querySelectorAll('#moment-items > li'),
        li => li.classList.contains('moment-mark') ? 'mark' : Number(li.dataset.timeMs))""")
    assert order.count("mark") == 1
    at = order.index("mark")
    assert all(t < moment_s for t in order[:at]) and all(t >= moment_s for t in order[at + 1:])
    # Attacker-controlled text (a key, a log line) is shown as text, never run as markup.
    assert any(HOSTILE in r["text"] for r in shown if r["kind"] == "slowlog")
    assert page.locator("#moment-items img").count() == 0 and page.evaluate("window.__pwned") is None
    # A point on a lane chooses that moment too: the middle of the last hour's axis is half an hour ago.
    page.locator(f'#timeline-axis g.lane[data-lane="{ids[primary.address]}"] rect.lane-track').click()
    chosen = datetime.strptime(page.get_by_label("Moment", exact=True).input_value(), "%Y-%m-%dT%H:%M:%S")
    assert abs(chosen.replace(tzinfo=UTC).timestamp() - (time.time() - 1800)) < 120
    expect(page.get_by_text("Nothing in this span.")).to_be_visible()  # the nodes started minutes ago
    page.get_by_label("Events", exact=True).check()
    restart.click()
    expect(page.locator("#moment-items > li.tl-event[data-type=restart]")).to_have_count(1)
    screenshot(page, "timeline.png", full_page=True)

    # -- Top Commands: grouped as SLOWLOG GET says, the largest first --
    page.get_by_role("tab", name="Top Commands").click()
    panel = page.locator("#panel-top")
    top_status = page.locator('[data-status="top"]')
    panel.get_by_label("Groups").select_option("100")
    panel.get_by_label("Group by").select_option("command")
    panel.get_by_label("Rank by").select_option("count")
    by_name: dict[str, list[int]] = {}
    for entry in slow.values():
        by_name.setdefault(entry["name"], []).append(entry["duration_us"])
    want_top = sorted(by_name.items(), key=lambda item: (-len(item[1]), item[0]))
    expect(top_status).to_contain_text(f"{len(by_name)} groups from")
    table = page.locator("#top-table tbody tr")
    expect(table).to_have_count(len(by_name))
    got = table.evaluate_all("""rows => rows.map(r => [r.dataset.key].concat(Array.from(
        r.querySelectorAll('td[data-col]'), td => td.textContent)))""")
    assert [(row[0], int(row[1])) for row in got] == [(name, len(d)) for name, d in want_top]
    for row, (name, durations) in zip(got, want_top, strict=True):
        total_ms, avg_ms, p99_ms, max_ms = (float(cell) for cell in row[2:])
        assert total_ms == sum(durations) / 1000, name
        assert abs(avg_ms - statistics.fmean(durations) / 1000) < 0.0011, name
        assert p99_ms == p99(durations) / 1000 and max_ms == max(durations) / 1000, name
    assert got[0][0] == "LRANGE" and len(by_name["LRANGE"]) == 300  # what the test ran most
    expect(page.locator("#top-table thead")).to_contain_text("Command")
    # By node, most time first: each node's own slow log, named by its address.
    panel.get_by_label("Group by").select_option("node")
    panel.get_by_label("Rank by").select_option("total")
    by_node: dict[str, list[int]] = {}
    for entry in slow.values():
        by_node.setdefault(entry["address"], []).append(entry["duration_us"])
    want_nodes = sorted(by_node.items(), key=lambda item: (-sum(item[1]), ids[item[0]]))
    expect(table).to_have_count(len(by_node))
    expect(table.first.locator("td").first).to_contain_text(want_nodes[0][0])
    got = table.evaluate_all("""rows => rows.map(r => [r.querySelector('td').textContent,
                                                        r.querySelector('[data-col=count]').textContent])""")
    assert [(key.split(" ")[0], int(count)) for key, count in got] == [(a, len(d)) for a, d in want_nodes]
    assert got[0][0] == f"{want_nodes[0][0]} ({'master' if want_nodes[0][0] == primary.address else 'replica'})"
    # By fingerprint, slowest first: DEBUG SLEEP 0.02 leads; the hostile key is not in a fingerprint.
    panel.get_by_label("Group by").select_option("fingerprint")
    panel.get_by_label("Rank by").select_option("max")
    expect(table.first).to_have_attribute("data-key", re.compile(r"^DEBUG SLEEP"))
    assert page.locator("#top-table img").count() == 0
    panel.get_by_label("Rank by").focus()
    screenshot(page, "top-commands.png", full_page=True)


def test_instance_status_follows_the_rounds_and_refreshes_by_itself_while_open(dcslog_server, redis_standalone, page):
    """The only master stopped: after two rounds the instance is ERROR with its reason, shown by the page's
    own periodic refresh (the clock is playwright's, so no test waits 30 s); back, it is RUNNING. Leaving
    the instance ends the refreshes."""
    from playwright.sync_api import expect

    server = dcslog_server
    node = redis_standalone
    imported = off_loop(server.import_instance, node.url)
    rid = imported["group_list"][0]["replication_list"][0]["replication_id"]
    off_loop(server.harvest)
    token = off_loop(server.cli, "token", "create", "--project-id", "proj-a", "--role", "viewer")["token"]
    page.clock.install()
    groups_asked = []
    page.on("request", lambda r: groups_asked.append(r.url) if re.search(r"/instance/[^/]+/groups$", r.url) else None)
    page.goto(f"{server.url}/console#/instances/{imported['instance_id']}")
    sign_in_with_token(page, "proj-a", token)
    item = page.locator(f'#node-groups li[data-node="{rid}"]')
    expect(item).to_have_attribute("data-status", "Active")
    expect(item).to_have_attribute("data-role", "master")
    badge = page.locator('[data-field="status"]')
    expect(badge).to_have_text("RUNNING")
    alert = page.locator('[data-alert="instance"]')
    expect(alert).to_be_hidden()

    shutdown(node)
    off_loop(server.harvest)
    off_loop(server.harvest)
    asked = len(groups_asked)
    page.clock.run_for(30_000)  # the page's own refresh, no click
    expect(item).to_have_attribute("data-status", "Inactive")
    assert len(groups_asked) == asked + 1
    expect(badge).to_have_text("ERROR")
    expect(alert).to_be_visible()
    expect(alert).to_contain_text("has no master that answers")
    expect(alert).to_contain_text(node.address)
    expect(item.locator(".dot")).to_have_css("background-color", "rgb(199, 58, 58)")

    node.start()
    off_loop(server.harvest)
    page.get_by_role("button", name="Refresh").click()
    expect(item).to_have_attribute("data-status", "Active")
    expect(badge).to_have_text("RUNNING")
    expect(alert).to_be_hidden()

    # The instance list says it too; and away from the instance, no more refreshes.
    page.get_by_role("link", name="Instances").first.click()
    expect(page.locator("#instances-table tbody tr")).to_contain_text("RUNNING")
    asked = len(groups_asked)
    page.clock.run_for(120_000)
    page.wait_for_timeout(300)
    assert len(groups_asked) == asked
