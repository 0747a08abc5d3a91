"""The web console at /console, driven in headless Chromium: sign in, instances, Run Logs, Slow Queries.

The browser is the Debian ``chromium`` package driven by playwright (no
browser download). Every run saves a screenshot of each page under
``test-artifacts/console/`` (git-ignored); with ``DCSLOG_UPDATE_SCREENSHOTS=1``
they go to docs/console/ instead, where docs/console.md shows them.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from pathlib import Path
from urllib.parse import parse_qsl, urlsplit

import httpx
import pytest

from dcslog import signing
from dcslog.testing.processes import stop_processes
from tests.records_reference import filter_records, merge_nodes, reference_records, write_multiday_log
from tests.runlog_reference import write_entry
from tests.test_e2e_sdk import expected_day

CHROMIUM = os.environ.get("DCSLOG_TEST_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
ROOT = Path(__file__).resolve().parent.parent
SCREENSHOTS = ROOT / ("docs" if os.environ.get("DCSLOG_UPDATE_SCREENSHOTS") == "1" else "test-artifacts") / "console"
STATIC = Path(__file__).resolve().parent.parent / "src" / "dcslog" / "console" / "static"
VIEWPORT = {"width": 1280, "height": 800}
TIMEOUT_MS = 30_000


def off_loop(function, *args):
    """Call ``function`` in another thread: playwright's sync API keeps an event loop running in this
    one, and the CLI and the slow-log harvest use ``asyncio.run``."""
    with ThreadPoolExecutor(1) as pool:
        return pool.submit(function, *args).result()


@pytest.fixture(scope="module")
def browser():
    # CI installs both (apt: chromium; pip: playwright): a missing browser is a failure, not a skip.
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.fail("playwright is not installed: pip install -e '.[test]'")
    if not os.access(CHROMIUM, os.X_OK):
        pytest.fail(f"Chromium not found at {CHROMIUM}: apt-get install -y chromium (or set DCSLOG_TEST_CHROMIUM)")
    playwright = sync_playwright().start()
    try:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield browser
        browser.close()
    finally:
        playwright.stop()


@pytest.fixture
def page(browser):
    from playwright.sync_api import expect

    expect.set_options(timeout=TIMEOUT_MS)
    context = browser.new_context(viewport=VIEWPORT, accept_downloads=True, locale="en-GB", timezone_id="UTC")
    page = context.new_page()
    page.set_default_timeout(TIMEOUT_MS)
    problems = []
    page.on("pageerror", lambda error: problems.append(f"page error: {error}"))
    # Any request that leaves the server under test would mean the console is not self-contained.
    page.on("request", lambda request: None if request.url.startswith(("http://127.0.0.", "blob:", "data:"))
            else problems.append(f"external request: {request.url}"))
    yield page
    context.close()
    assert not problems, problems


def screenshot(page, name: str, full_page: bool = False) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.wait_for_timeout(200)  # let the last repaint land
    page.screenshot(path=str(SCREENSHOTS / name), full_page=full_page)


def sign_in_with_token(page, project_id: str, token: str) -> None:
    page.get_by_label("Project ID").fill(project_id)
    page.get_by_label("Token", exact=True).fill(token)
    page.get_by_label("Token", exact=True).press("Enter")  # the form submits from the keyboard


# ---- serving ----

def test_console_page_and_assets_are_served_with_types_and_cache_headers(dcslog_server):
    url = dcslog_server.url
    page = httpx.get(f"{url}/console")
    assert page.status_code == 200
    assert page.headers["content-type"] == "text/html; charset=utf-8"
    assert page.headers["cache-control"] == "no-cache"
    assert page.headers["x-content-type-options"] == "nosniff"
    assert "default-src 'none'" in page.headers["content-security-policy"]
    assert page.headers["x-request-id"]

    slash = httpx.get(f"{url}/console/")
    assert slash.status_code == 308 and slash.headers["location"] == "/console"

    expected_types = {"console.js": "text/javascript; charset=utf-8", "dcs-sign.js": "text/javascript; charset=utf-8",
                      "sse.js": "text/javascript; charset=utf-8", "time-axis.js": "text/javascript; charset=utf-8",
                      "console.css": "text/css; charset=utf-8",
                      "icon.svg": "image/svg+xml"}
    referenced = dict(re.findall(r'"/console/static/([\w.-]+)\?v=([0-9a-f]{16})"', page.text))
    assert set(referenced) == set(expected_types)
    for name, version in referenced.items():
        asset = httpx.get(f"{url}/console/static/{name}", params={"v": version})
        assert asset.status_code == 200, name
        assert asset.headers["content-type"] == expected_types[name]
        assert asset.headers["cache-control"] == "public, max-age=31536000, immutable"
        assert asset.content == (STATIC / name).read_bytes()
        assert version == hashlib.sha256(asset.content).hexdigest()[:16]
        # Without the current version, the browser must revalidate; the ETag makes that cheap.
        unversioned = httpx.get(f"{url}/console/static/{name}")
        assert unversioned.headers["cache-control"] == "no-cache"
        again = httpx.get(f"{url}/console/static/{name}", headers={"If-None-Match": unversioned.headers["etag"]})
        assert again.status_code == 304 and again.content == b""
    assert httpx.head(f"{url}/console").status_code == 200

    for missing in ("/console/static/nope.js", "/console/static/index.html", "/console/elsewhere"):
        response = httpx.get(url + missing)
        assert response.status_code == 404, missing
        assert response.json() == {"error_code": "DCS.4001", "error_msg": response.json()["error_msg"],
                                   "error_ext_msg": None}


def test_console_needs_nothing_from_elsewhere():
    """Works offline: no CDN, no web font, no third-party script; every URL is dcslog's own."""
    for path in STATIC.iterdir():
        text = path.read_text()
        if path.suffix == ".svg":
            text = text.replace('xmlns="http://www.w3.org/2000/svg"', "")  # a namespace name, not a fetch
        assert not re.search(r"https?:|//[a-z0-9.-]+\.[a-z]{2,}/|@import|url\(", text, re.I), path.name
    html = (STATIC / "index.html").read_text()
    for reference in re.findall(r'(?:src|href)="([^"]*)"', html):
        assert reference.startswith(("{{asset:", "#")), reference


# ---- the signer in the browser ----

def test_browser_signer_matches_the_server_byte_for_byte(dcslog_server, page):
    page.goto(f"{dcslog_server.url}/console")
    page.wait_for_function("window.DcsSign !== undefined")

    messages = ["", "a", "abc", "x" * 55, "x" * 56, "x" * 63, "x" * 64, "x" * 65, "y" * 119, "y" * 120,
                "z" * 1000, "héllo wörld ✓ 日本"]
    digests = page.evaluate("ms => ms.map(m => DcsSign.sha256Hex(m))", messages)
    assert digests == [hashlib.sha256(m.encode()).hexdigest() for m in messages]
    keys = ["", "k", "k" * 64, "k" * 65, "ключ" * 50]
    macs = page.evaluate("ks => ks.map(k => DcsSign.hmacSha256Hex(k, 'message ✓'))", keys)
    assert macs == [signing.sign(k, "message ✓") for k in keys]

    host = dcslog_server.url.removeprefix("http://")
    when = datetime(2026, 3, 4, 5, 6, 7, tzinfo=UTC)
    cases = [
        ("GET", "/v2/proj-a/instances", ""),
        ("POST", "/v2/proj-a/instances/0f0e/redislog", "log_type=run&query_time=3&replication_id=abc"),
        ("GET", "/v2/proj-a/instances/0f0e/slowlog",
         "sort_key=duration&start_time=1&end_time=2&b=x%20y&a=%7E~&a=%2A*&c=%C3%A9&B=1&d=&e=a+b&f=%21%27%28%29"),
        ("POST", "/v2/proj-a/instances/0f0e/redislog/a%20b%2Fc~/links", ""),
    ]
    for method, path, query in cases:
        browser_headers = page.evaluate(
            """([method, path, query, host, now]) => DcsSign.signRequest({
                accessKey: 'AKTEST', secretKey: 'secret ✓ key', method: method, path: path, query: query,
                host: host, now: new Date(now)})""",
            [method, path, query, host, when.isoformat()])
        server_headers = signing.sign_request("AKTEST", "secret ✓ key", method,
                                           f"http://{host}{path}" + (f"?{query}" if query else ""), now=when)
        assert browser_headers["X-Sdk-Date"] == server_headers["X-Sdk-Date"] == "20260304T050607Z"
        assert browser_headers["Authorization"] == server_headers["Authorization"], (method, path, query)

    # What the console puts on the wire is already canonical, so it signs what it sends.
    built = page.evaluate("DcsSign.queryString([['b', 'x y'], ['a', '~*é'], ['skip', ''], ['n', 0]])")
    assert built == "b=x%20y&a=~%2A%C3%A9&n=0"


# ---- pages ----

def test_token_sign_in_collect_live_status_and_download(dcslog_server, redis_standalone, page):
    from playwright.sync_api import expect

    server = dcslog_server
    imported = off_loop(server.import_instance, redis_standalone.url)
    token = off_loop(server.cli, "token", "create", "--project-id", "proj-a", "--role", "operator")["token"]

    page.goto(f"{server.url}/console")
    expect(page).to_have_url(re.compile(r"#/sign-in$"))
    expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
    expect(page.get_by_label("Project ID")).to_be_focused()
    page.get_by_label("Project ID").fill("proj-a")
    screenshot(page, "sign-in.png")

    # A wrong token: the DCS error comes back to the user, code and message.
    sign_in_with_token(page, "proj-a", "not-a-token")
    expect(page.get_by_role("alert")).to_contain_text("DCS.1001")
    expect(page.get_by_role("alert")).to_contain_text("Invalid token.")

    sign_in_with_token(page, "proj-a", token)
    expect(page.get_by_role("heading", name="Instances")).to_be_visible()
    row = page.locator("#instances-table tbody tr")
    expect(row).to_have_count(1)
    expect(row).to_contain_text("cache")
    expect(row).to_contain_text("RUNNING")
    expect(row).to_contain_text(f"{redis_standalone.host}:{redis_standalone.port}")
    expect(page.locator("#session-project")).to_have_text("proj-a")
    screenshot(page, "instances.png")
    assert page.evaluate("sessionStorage.length") >= 1 and page.evaluate("localStorage.length") == 0

    page.get_by_role("link", name="cache").click()
    expect(page).to_have_url(re.compile(rf"#/instances/{imported['instance_id']}$"))
    expect(page.get_by_role("heading", name="cache")).to_be_visible()
    expect(page.get_by_role("tab", name="Run Logs")).to_have_attribute("aria-selected", "true")
    expect(page.get_by_role("tab", name="Slow Queries")).to_have_attribute("aria-selected", "false")
    expect(page.get_by_label("Shard")).to_have_value(imported["group_list"][0]["group_id"])
    expect(page.get_by_label("Replica")).to_contain_text(redis_standalone.host)
    expect(page.get_by_text("No run logs collected yet")).to_be_visible()

    # The status updates in place: mark the document and check the mark survives.
    page.evaluate("window.__sameDocument = true")
    page.get_by_label("Days").select_option("0")
    page.get_by_role("button", name="Collect").click()
    files = page.locator("#run-logs-table tbody tr")
    expect(files).to_have_count(1)
    expect(files.locator('td[data-file-status="succeed"]')).to_have_count(1)
    expect(page.locator('[data-status="run-logs"]')).to_contain_text("Collection finished")
    assert page.evaluate("window.__sameDocument") is True

    today = datetime.now(UTC).date()
    file_name = f"redis_{redis_standalone.host}_{today.isoformat()}.log"
    expect(files.first).to_contain_text(file_name)
    with page.expect_download() as started:
        page.get_by_role("button", name=f"Download {file_name}").click()
    download = started.value
    assert download.suggested_filename == file_name
    body = Path(download.path()).read_bytes()

    # The same bytes as the server serves for the file, and the node's own log for the day.
    headers = {"X-Auth-Token": token}
    api = f"{server.url}/v2/proj-a/instances/{imported['instance_id']}"
    listing = httpx.get(f"{api}/redislog", params={"log_type": "run"}, headers=headers).json()
    [item] = listing["file_list"]
    link = httpx.post(f"{api}/redislog/{item['id']}/links", headers=headers).json()["link"]
    assert body == httpx.get(link).content
    assert hashlib.sha256(body).hexdigest() == item["sha256"] and len(body) == item["size"]
    assert body and expected_day(redis_standalone.log_file, today).startswith(body)
    assert b"Ready to accept connections" in body

    # A viewer may look but not collect: the DCS error says so.
    viewer = off_loop(server.cli, "token", "create", "--project-id", "proj-a", "--role", "viewer")["token"]
    page.get_by_role("button", name="Sign out").click()
    expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
    assert page.evaluate("sessionStorage.length") == 0
    sign_in_with_token(page, "proj-a", viewer)
    page.get_by_role("link", name="cache").click()
    expect(page.locator('#run-logs-table td[data-file-status="succeed"]')).to_have_count(1)
    expect(page.get_by_label("Replica")).to_contain_text(redis_standalone.host)
    page.get_by_role("button", name="Collect").click()
    expect(page.locator('[data-alert="run-logs"]')).to_contain_text("DCS.2003")


def test_aksk_sign_in_replica_collection_and_slow_queries(dcslog_server, redis_replicated, page):
    from playwright.sync_api import expect

    server = dcslog_server
    primary = redis_replicated.primary
    imported = off_loop(server.import_instance, primary.url)
    credential = off_loop(server.credentials, "proj-a", "operator")
    with contextlib.closing(primary.client()) as client:
        client.config_set("slowlog-log-slower-than", 0)  # log everything: rows to page through
        for i in range(8):
            client.set(f"key:{i}", "v" * i)
            client.hset(f"hash:{i}", mapping={"a": i, "b": i})
            client.mget([f"key:{j}" for j in range(i + 1)])
        client.execute_command("DEBUG", "SLEEP", "0.02")
        client.config_set("slowlog-log-slower-than", 10000)
    off_loop(server.harvest)

    sent = []
    page.on("request", lambda request: sent.append(request))
    page.goto(f"{server.url}/console#/instances/{imported['instance_id']}/slow-queries")
    expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
    page.get_by_label("Project ID").fill("proj-a")
    page.get_by_label("Access key and secret key").check()
    expect(page.get_by_label("Token", exact=True)).to_be_hidden()
    page.get_by_label("Access key (AK)").fill(credential["access_key"])
    page.get_by_label("Secret key (SK)").fill(credential["secret_key"])
    page.get_by_role("button", name="Sign in").click()

    # Signed in, the page asked for before comes back: the instance, on its Slow Queries tab.
    expect(page.get_by_role("tab", name="Slow Queries")).to_have_attribute("aria-selected", "true")
    expect(page.locator("#session-mode")).to_have_text(f"AK {credential['access_key']}")
    page.get_by_label("Rows per page").select_option("10")
    page.get_by_label("Sort by").select_option("duration")
    page.get_by_role("button", name="Search").click()
    rows = page.locator("#slow-queries-table tbody tr")
    expect(rows).to_have_count(10)
    status = page.locator('[data-status="slow-queries"]')
    expect(status).to_contain_text("slow queries in this range")
    total = int(status.inner_text().split()[0])
    assert total >= 25
    pager = page.locator('[data-pager="slow-queries"]')
    expect(pager).to_contain_text(f"1–10 of {total}")
    expect(rows.first).to_contain_text("DEBUG SLEEP 0.02")  # the longest, first
    durations = [float(d) for d in page.locator("#slow-queries-table tbody td.num").all_inner_texts()]
    assert durations == sorted(durations, reverse=True)
    expect(rows.first).to_contain_text(f"{primary.host}:{primary.port}")
    fingerprints = page.locator("#slow-queries-table tbody td:nth-child(4)").all_inner_texts()
    assert all("?" in f for f in fingerprints), fingerprints
    screenshot(page, "slow-queries.png", full_page=True)

    pager.get_by_role("button", name="Next").click()
    expect(pager).to_contain_text(f"11–20 of {total}")
    pager.get_by_role("button", name="Previous").click()
    expect(pager).to_contain_text(f"1–10 of {total}")

    # Oldest first by start time, from the keyboard.
    page.get_by_label("Sort by").select_option("start_time")
    page.get_by_label("Order").select_option("asc")
    page.get_by_role("button", name="Search").press("Enter")
    expect(pager).to_contain_text(f"1–10 of {total}")
    expect(rows.first).not_to_contain_text("DEBUG SLEEP")
    starts = [cell.get_attribute("title") for cell in page.locator("#slow-queries-table tbody td:first-child").all()]
    assert len(starts) == 10 and starts == sorted(starts)

    # Tabs are buttons: arrow keys move between them.
    page.get_by_role("tab", name="Slow Queries").focus()
    page.keyboard.press("ArrowLeft")
    expect(page.get_by_role("tab", name="Run Logs")).to_have_attribute("aria-selected", "true")
    expect(page.get_by_role("tab", name="Run Logs")).to_be_focused()
    expect(page).to_have_url(re.compile(r"/run-logs$"))

    replica = redis_replicated.replicas[1]
    [group] = imported["group_list"]
    [entry] = [r for r in group["replication_list"] if r["replication_ip"] == replica.host]
    expect(page.get_by_label("Shard")).to_contain_text("group-0")
    expect(page.get_by_label("Replica").locator("option")).to_have_count(3)
    page.get_by_label("Replica").select_option(entry["replication_id"])
    page.get_by_label("Days").select_option("3")
    page.get_by_role("button", name="Collect").click()
    files = page.locator("#run-logs-table tbody tr")
    expect(files).to_have_count(3)
    expect(files.locator('td[data-file-status="succeed"]')).to_have_count(3)
    expect(files.first).to_contain_text(f"redis_{replica.host}_{datetime.now(UTC).date().isoformat()}.log")
    page.get_by_label("Days").focus()  # a visible focus ring in the picture
    screenshot(page, "run-logs.png")

    with page.expect_download() as started:
        files.first.get_by_role("button", name=re.compile("^Download")).click()
    body = Path(started.value.path()).read_bytes()
    assert body and expected_day(replica.log_file, datetime.now(UTC).date()).startswith(body)

    # Every API call was signed in the browser, and the secret key never left it.
    api_calls = [r for r in sent if "/v2/" in r.url]
    assert len(api_calls) >= 8
    for request in api_calls:
        headers = request.all_headers()
        assert headers["authorization"].startswith(f"SDK-HMAC-SHA256 Access={credential['access_key']}, "
                                                   "SignedHeaders=host;x-sdk-date, Signature=")
        assert "x-auth-token" not in headers
    secret = credential["secret_key"]
    for request in sent:
        assert secret not in request.url and secret not in str(request.all_headers())
        assert secret not in (request.post_data or "")


def test_file_list_goes_from_creating_to_succeed_without_a_reload(dcslog_server_factory, redis_standalone, page,
                                                                   tmp_path):
    """The server runs with no worker, so the file stays `creating` for as long as the test likes; a
    `dcslog worker` process started later collects it, and only the page's own polling can show that."""
    from playwright.sync_api import expect

    with dcslog_server_factory(run_worker=False) as server:
        imported = off_loop(server.import_instance, redis_standalone.url)
        token = off_loop(server.cli, "token", "create", "--project-id", "proj-a", "--role", "operator")["token"]
        listings = []
        page.on("request", lambda r: listings.append(r) if r.method == "GET" and "/redislog?" in r.url else None)
        page.goto(f"{server.url}/console#/instances/{imported['instance_id']}")
        sign_in_with_token(page, "proj-a", token)
        expect(page.get_by_text("No run logs collected yet")).to_be_visible()
        expect(page.get_by_label("Replica")).to_contain_text(redis_standalone.host)
        page.evaluate("window.__sameDocument = true")
        page.get_by_role("button", name="Collect").click()

        status = page.locator("#run-logs-table tbody td[data-file-status]")
        expect(status).to_have_attribute("data-file-status", "creating")
        expect(page.locator('[data-status="run-logs"]')).to_contain_text("Collecting today")
        asked = len(listings)
        # While it is creating, the page keeps asking (every 2 s) and keeps showing `creating`.
        for _ in range(100):
            if len(listings) >= asked + 2:
                break
            page.wait_for_timeout(200)
        assert len(listings) >= asked + 2, [r.url for r in listings]
        expect(status).to_have_attribute("data-file-status", "creating")

        with open(tmp_path / "worker.log", "wb") as log:
            worker = subprocess.Popen([sys.executable, "-m", "dcslog.cli", "worker"], env=dict(os.environ),
                                      stdout=log, stderr=subprocess.STDOUT)
        try:
            expect(status).to_have_attribute("data-file-status", "succeed")
            expect(page.locator('[data-status="run-logs"]')).to_contain_text("Collection finished")
            expect(page.get_by_role("button", name=re.compile("^Download redis_"))).to_be_enabled()
        finally:
            stop_processes(worker)
        assert page.evaluate("window.__sameDocument") is True  # no reload: the same document all along


def active_element(page) -> str:
    """What has the keyboard focus: its tag and accessible label or text."""
    return page.evaluate("""() => { const e = document.activeElement;
        return e.tagName + ' ' + (e.getAttribute('aria-label') || e.textContent.trim()); }""")


def test_keyboard_focus_stays_on_collect_download_and_the_last_pages_next(dcslog_server, redis_standalone, page):
    """A button busy with its request, or with nothing left to page to, keeps the keyboard focus
    (aria-disabled, clicks ignored) instead of dropping it to <body> as a disabled button would."""
    from playwright.sync_api import expect

    server = dcslog_server
    imported = off_loop(server.import_instance, redis_standalone.url)
    token = off_loop(server.cli, "token", "create", "--project-id", "proj-a", "--role", "operator")["token"]
    with contextlib.closing(redis_standalone.client()) as client:
        client.config_set("slowlog-log-slower-than", 0)
        for i in range(15):
            client.set(f"key:{i}", i)
        client.config_set("slowlog-log-slower-than", 10000)
    off_loop(server.harvest)

    page.goto(f"{server.url}/console#/instances/{imported['instance_id']}")
    sign_in_with_token(page, "proj-a", token)
    collect = page.get_by_role("button", name="Collect")
    # The replica list comes with the groups: Collect before it arrives asks to pick a replica.
    expect(page.get_by_label("Replica")).to_contain_text(redis_standalone.host)
    page.get_by_label("Days").focus()
    page.keyboard.press("Tab")
    expect(collect).to_be_focused()
    page.keyboard.press("Enter")
    # The request is done (a fast worker may even have finished the collection)…
    expect(page.locator('[data-status="run-logs"]')).to_contain_text(re.compile("Collecting today|Collection finished"))
    expect(collect).not_to_have_attribute("aria-disabled", "true")
    assert active_element(page) == "BUTTON Collect"  # …and the focus is where it was

    expect(page.locator('#run-logs-table td[data-file-status="succeed"]')).to_have_count(1)
    page.keyboard.press("Tab")
    download = page.get_by_role("button", name=re.compile("^Download redis_"))
    expect(download).to_be_focused()
    with page.expect_download() as started:
        page.keyboard.press("Enter")
    assert started.value.suggested_filename.startswith("redis_")
    expect(download).not_to_have_attribute("aria-disabled", "true")
    assert active_element(page) == "BUTTON " + download.get_attribute("aria-label")

    # Page through the slow log with Enter on Next: on the last page Next cannot go on, but keeps the focus.
    page.get_by_role("tab", name="Slow Queries").click()
    page.get_by_label("Rows per page").select_option("10")
    page.get_by_role("button", name="Search").click()
    pager = page.locator('[data-pager="slow-queries"]')
    expect(pager).to_contain_text("1–10 of ")
    total = int(pager.inner_text().split(" of ")[1].split()[0])
    assert total > 10
    next_button = pager.get_by_role("button", name="Next")
    next_button.focus()
    last = (total - 1) // 10 * 10
    for offset in range(10, last + 1, 10):
        page.keyboard.press("Enter")
        expect(pager).to_contain_text(f"{offset + 1}–{min(offset + 10, total)} of {total}")
    assert active_element(page) == "BUTTON Next"
    expect(next_button).to_have_attribute("aria-disabled", "true")
    page.keyboard.press("Enter")  # nothing after the last page
    page.wait_for_timeout(300)
    expect(pager).to_contain_text(f"{last + 1}–{total} of {total}")
    assert active_element(page) == "BUTTON Next"


# ---- Search: run-log records ----

def record_texts(page) -> list[tuple[str, str]]:
    """(id, message) of every record row on the page, in order (textContent keeps every space)."""
    return [tuple(row) for row in page.evaluate("""() => Array.from(document.querySelectorAll('#search-results > li'))
        .map(li => [li.dataset.id, li.querySelector('.rec-msg').textContent])""")]


def expected_rows(refs: dict[str, list[dict]], *, start: int, end: int, desc: bool = False, **filters
                  ) -> list[tuple[str, str]]:
    """(id, message) of what a search should show, from the brute-force reference (ids are
    ``{time_ms}_{seq}_{replication_id}``, SPEC §6)."""
    per_node = {rid: filter_records(records, start_ms=start, end_ms=end, **filters) for rid, records in refs.items()}
    rows = [(f"{r['time_ms']}_{r['seq']}_{rid}", r["message"]) for rid, r in merge_nodes(per_node)]
    return rows[::-1] if desc else rows


def node_ids(imported: dict) -> dict[str, str]:
    """{host:port: replication id} of an imported instance."""
    return {f"{rep['replication_ip']}:{rep['replication_port']}": rep["replication_id"]
            for group in imported["group_list"] for rep in group["replication_list"]}


def search_panel(page):
    return page.locator("#panel-search")


def set_custom_range(page, start: datetime, end: datetime) -> None:
    panel = search_panel(page)
    panel.get_by_label("Time range").select_option("custom")
    panel.get_by_label("From", exact=True).fill(start.strftime("%Y-%m-%dT%H:%M:%S"))
    panel.get_by_label("To", exact=True).fill(end.strftime("%Y-%m-%dT%H:%M:%S"))


def run_search(page) -> None:
    """Submit the search form and wait for its answer (the status line says how many records)."""
    from playwright.sync_api import expect

    status = page.locator('[data-status="search"]')
    page.evaluate("document.querySelector('[data-status=\"search\"]').textContent = ''")
    search_panel(page).get_by_role("button", name="Search").click()
    expect(status).to_have_text(re.compile(r"records?|Nothing matched"))


def load_everything(page) -> None:
    """Click Load more until there is no more."""
    from playwright.sync_api import expect

    more = search_panel(page).locator('[data-action="more"]')
    rows = page.locator("#search-results > li")
    for _ in range(100):
        if not more.is_visible():
            return
        count = rows.count()
        more.click()
        expect(page.locator('[data-status="search"]')).not_to_contain_text("Loading")
        assert rows.count() > count or not more.is_visible()
    raise AssertionError("Load more never ran out")


def test_search_tab_filters_load_more_and_an_unreadable_node(dcslog_server, redis_replicated, page, tmp_path):
    """The rows a search shows are exactly what the brute-force reading of the nodes' logs says, for
    a keyword with a minimum level, page after page with Load more, and for one chosen node."""
    from playwright.sync_api import expect

    server = dcslog_server
    today = datetime.now(UTC).date()
    yesterday = today - timedelta(days=1)
    primary, missing_node, replica = redis_replicated.primary, *redis_replicated.replicas
    logs = {primary.address: tmp_path / "primary.log", replica.address: tmp_path / "replica.log"}
    for seed, path in enumerate(logs.values(), start=61):
        write_multiday_log(path, days=[yesterday], tz=UTC, entries_per_day=1500, seed=seed, crash_every=97)
    absent = tmp_path / "gone" / "redis.log"  # this node's log cannot be read: the answer says so
    log_args = [arg for address, path in [*logs.items(), (missing_node.address, absent)]
                for arg in ("--log-file", f"{address}={path}")]
    imported = off_loop(server.import_instance, primary.url, "proj-a", "cache", *log_args)
    ids = node_ids(imported)
    refs = {ids[address]: reference_records(path, UTC) for address, path in logs.items()}
    token = off_loop(server.cli, "token", "create", "--project-id", "proj-a", "--role", "viewer")["token"]

    page.goto(f"{server.url}/console#/instances/{imported['instance_id']}/search")
    sign_in_with_token(page, "proj-a", token)
    panel = search_panel(page)
    expect(page.get_by_role("tab", name="Search")).to_have_attribute("aria-selected", "true")
    # Opening the tab searches the last hour at once: nothing there, and one node could not be read.
    expect(panel.get_by_text("No records match these filters")).to_be_visible()
    notice = page.locator('[data-notice="sources"]')
    expect(notice).to_contain_text("Partial answer: 1 node was not read")
    expect(notice).to_contain_text(missing_node.address)
    expect(notice).to_contain_text(str(absent))
    expect(notice.locator("li")).to_have_count(1)

    start = datetime(yesterday.year, yesterday.month, yesterday.day, tzinfo=UTC)
    end = start + timedelta(days=1)
    start_ms, end_ms = int(start.timestamp() * 1000), int(end.timestamp() * 1000)

    # A keyword, case-insensitive, from notice up: the rows the reference finds, in its order.
    set_custom_range(page, start, end)
    panel.get_by_label("Keyword").fill("needle")
    panel.get_by_label("Case-insensitive").check()
    panel.get_by_label("Minimum level").select_option("notice")
    run_search(page)
    want = expected_rows(refs, start=start_ms, end=end_ms, keyword="needle", insensitive=True, min_level="notice")
    assert 10 < len(want) < 100
    assert record_texts(page) == want
    rows = page.locator("#search-results > li")
    expect(rows).to_have_count(len(want))
    expect(panel.get_by_role("button", name="Load more")).to_be_hidden()
    expect(page.locator('[data-status="search"]')).to_contain_text(f"{len(want)} records, the whole range")
    # Each row reads like the log: time, node, role letter, level marker, message; the keyword marked.
    first = rows.first
    first_id = want[0][0]
    first_ref = {f"{r['time_ms']}_{r['seq']}_{rid}": r for rid, records in refs.items() for r in records}[first_id]
    assert first.locator(".rec-time").inner_text() == (
        datetime.fromtimestamp(first_ref["time_ms"] / 1000, UTC).strftime("%Y-%m-%d %H:%M:%S.%f")[:-3])
    assert first.locator(".rec-role").inner_text() == {"master": "M", "slave": "S", "child": "C",
                                                       "sentinel": "X"}[first_ref["role"]]
    assert first.locator(".rec-level").inner_text() == {"notice": "*", "warning": "#"}[first_ref["level"]]
    assert first.locator(".rec-node").inner_text() in logs
    marks = page.locator("#search-results mark").all_text_contents()
    assert marks and {m.lower() for m in marks} == {"needle"}, marks
    warnings = page.locator("#search-results > li.rec-warning")
    expect(warnings).to_have_count(sum(1 for _, r in merge_nodes({k: filter_records(
        v, start_ms=start_ms, end_ms=end_ms, keyword="needle", insensitive=True, min_level="warning")
        for k, v in refs.items()})))
    # A crash report's continuation lines come with their entry, folded when long.
    folded = page.locator("#search-results details.rec-more")
    if folded.count():
        folded.first.locator("summary").click()
        expect(folded.first.locator("pre")).to_contain_text("REDIS BUG REPORT START")
    expect(notice).to_contain_text(missing_node.address)
    panel.get_by_label("Keyword").focus()
    screenshot(page, "search.png", full_page=True)

    # Warnings only, 50 a page: Load more until the end gives every one, once, in order.
    panel.get_by_label("Keyword").fill("")
    panel.get_by_label("Minimum level").select_option("warning")
    panel.get_by_label("Per page").select_option("50")
    run_search(page)
    expect(rows).to_have_count(50)
    expect(panel.get_by_role("button", name="Load more")).to_be_visible()
    load_everything(page)
    want = expected_rows(refs, start=start_ms, end=end_ms, min_level="warning")
    assert len(want) > 150
    assert record_texts(page) == want
    expect(page.locator('[data-status="search"]')).to_contain_text(f"{len(want)} records, the whole range")

    # One node, replica lines only, newest first.
    panel.locator("#search-nodes summary").click()
    panel.get_by_label(re.compile(re.escape(replica.address))).check()
    expect(panel.locator("#search-nodes summary")).to_have_text(replica.address)
    page.keyboard.press("Escape")
    panel.get_by_label("Minimum level").select_option("debug")
    panel.get_by_label("Role").select_option("slave")
    panel.get_by_label("Sort direction").select_option("desc")
    run_search(page)
    load_everything(page)
    replica_id = ids[replica.address]
    want = expected_rows({replica_id: refs[replica_id]}, start=start_ms, end=end_ms, role="slave", desc=True)
    assert len(want) > 50
    assert record_texts(page) == want
    expect(notice).to_be_hidden()  # the unreadable node was not asked this time


def fake_record(n: int, message: str, level: str = "notice", lines: tuple[str, ...] = ()) -> dict:
    """A record as the records endpoint answers it, for a test that stands in for the server."""
    ms = 1_796_000_000_000 + n * 1000
    rid = "00000000-0000-4000-8000-000000000001"
    return {"id": f"{ms}_0_{rid}", "time": datetime.fromtimestamp(ms / 1000, UTC).isoformat(timespec="milliseconds"),
            "time_ms": ms, "replication_id": rid, "replication_ip": "127.0.0.2", "replication_port": 6379,
            "group_name": "group-0", "role": "master", "pid": 7, "level": level, "message": message,
            "lines": list(lines), "format": "legacy"}


def query_of(url: str) -> dict[str, str]:
    return dict(parse_qsl(urlsplit(url).query, keep_blank_values=True))


def open_instance(page, server, redis_node, tab: str = "run-logs") -> dict:
    """Import ``redis_node``, sign in with a viewer token and open the instance on ``tab``; returns the import."""
    from playwright.sync_api import expect

    imported = off_loop(server.import_instance, redis_node.url)
    token = off_loop(server.cli, "token", "create", "--project-id", "proj-a", "--role", "viewer")["token"]
    page.goto(f"{server.url}/console#/instances/{imported['instance_id']}/{tab}")
    sign_in_with_token(page, "proj-a", token)
    expect(page.get_by_role("tab", name="Search")).to_be_visible()
    expect(page.locator('#search-nodes input[name="node"]').first).to_be_attached()  # the groups are in
    return imported


def test_search_reads_on_through_empty_pages_then_waits_for_load_more(dcslog_server, redis_standalone, page):
    """A page may come back empty with a next_cursor (the server bounds the bytes one page reads): the
    console asks for the next ones by itself, a few, then leaves it to Load more. The server is stood in
    for here, since a real one needs 256 MiB in a window to answer that way."""
    from playwright.sync_api import expect

    open_instance(page, dcslog_server, redis_standalone)
    records = [fake_record(1, "first"), fake_record(2, "second", "warning"), fake_record(3, "third")]
    answers = [([], f"c{k}") for k in range(1, 6)] + [(records[:2], "c6"), (records[2:], None)]
    asked = []

    def answer(route):
        asked.append(query_of(route.request.url))
        found, cursor = answers[len(asked) - 1]
        route.fulfill(status=200, content_type="application/json", body=json.dumps({
            "records": found, "next_cursor": cursor, "scanned_bytes": 256 << 20,
            "sources": [{"replication_id": found[0]["replication_id"] if found else "x", "replication_ip": "127.0.0.2",
                         "live": "file", "read": True, "error": None, "collected_days": 0}]}))

    page.route(re.compile(r"/redislog/records\?"), answer)
    page.get_by_role("tab", name="Search").click()  # opening the tab searches
    status = page.locator('[data-status="search"]')
    expect(status).to_contain_text("Nothing matched in the part of the range read so far (1.3 GiB read)")
    assert [q.get("cursor") for q in asked] == [None, "c1", "c2", "c3", "c4"]
    more = search_panel(page).get_by_role("button", name="Load more")
    expect(more).to_be_visible()
    expect(page.get_by_text("No records match these filters")).to_be_hidden()  # not the end: not "no records"
    expect(page.locator("#search-results > li")).to_have_count(0)

    more.click()
    expect(status).to_contain_text("3 records, the whole range")
    assert [q.get("cursor") for q in asked[5:]] == ["c5", "c6"]
    assert record_texts(page) == [(r["id"], r["message"]) for r in records]
    expect(more).to_be_hidden()
    expect(page.locator("#search-results > li.rec-warning")).to_have_count(1)
    assert all(q["limit"] == "100" and q["sort_dir"] == "asc" and "follow" not in q for q in asked)

    # The server's own errors come back as they are: end before start is DCS.4025.
    page.unroute(re.compile(r"/redislog/records\?"))
    now = datetime.now(UTC).replace(microsecond=0)
    set_custom_range(page, now, now - timedelta(hours=1))
    search_panel(page).get_by_role("button", name="Search").click()
    alert = page.locator('[data-alert="search"]')
    expect(alert).to_contain_text("DCS.4025")
    expect(alert).to_contain_text("The end time must not be earlier than the start time.")
    expect(alert).to_contain_text("HTTP 400")


def test_sse_parser_takes_events_cut_anywhere(dcslog_server, page):
    """Events split across chunks at any byte (inside CRLF, inside a UTF-8 character) parse the same."""
    page.goto(f"{dcslog_server.url}/console")
    page.wait_for_function("window.DcsSse !== undefined")
    stream = (": heartbeat\r\n\r\n"
              "event: sources\r\ndata: [1]\r\n\r\n"
              'id: 1_0_a\nevent: record\ndata: {"m":"é ✓ 日本"}\n\n'
              "id: 2_0_a\revent: record\rdata:line1\rdata: line2\r\r"
              "data\n\n"
              ": c\nretry: 10\nevent: record\nid: 3\ndata: x\n\n"
              "event: record\nid: 4\n\n"  # no data: not an event
              "event: record\ndata: unfinished")  # no blank line yet: not an event
    parsed = page.evaluate("""(text) => {
        const bytes = new TextEncoder().encode(text);
        const run = (chunks) => {
            const events = [], comments = [];
            const parser = new DcsSse.Parser(e => events.push([e.type, e.data, e.id]), c => comments.push(c));
            chunks.forEach(chunk => parser.push(chunk));
            return JSON.stringify([events, comments]);
        };
        const splits = new Set();
        for (let i = 0; i <= bytes.length; i++) splits.add(run([bytes.slice(0, i), bytes.slice(i)]));
        return {whole: run([bytes]), text: run([text]), splits: Array.from(splits),
                bytes: run(Array.from(bytes, b => new Uint8Array([b])))};
    }""", stream)
    events = [["sources", "[1]", ""], ["record", '{"m":"é ✓ 日本"}', "1_0_a"], ["record", "line1\nline2", "2_0_a"],
              ["message", "", "2_0_a"], ["record", "x", "3"]]
    assert json.loads(parsed["whole"]) == [events, ["heartbeat", "c"]]
    assert parsed["splits"] == [parsed["whole"]]
    assert parsed["bytes"] == parsed["text"] == parsed["whole"]


def sse(*events: tuple[str, object, str | None]) -> str:
    """An event stream: (event, data, id) each."""
    out = []
    for event, data, event_id in events:
        out.append((f"id: {event_id}\n" if event_id else "") + f"event: {event}\ndata: {json.dumps(data)}\n\n")
    return ": heartbeat\n\n".join(out)


def test_follow_reconnects_after_the_last_record_seen_and_stops_when_told(dcslog_server, redis_standalone, page):
    """The Follow switch reads the stream with fetch() (authenticated, unlike EventSource); when the
    stream drops it reconnects with the last record id as cursor and shows each record once; off, or
    leaving the tab, ends it. The server is stood in for, to drop streams where the test wants."""
    from playwright.sync_api import expect

    imported = open_instance(page, dcslog_server, redis_standalone, tab="search")
    rid = imported["group_list"][0]["replication_list"][0]["replication_id"]
    expect(page.locator('[data-status="search"]')).to_contain_text("records")
    sources = [{"replication_id": rid, "replication_ip": redis_standalone.host, "live": "file", "read": True,
                "error": None, "collected_days": 0}]
    unread = [{**sources[0], "read": False, "error": "log file /x/redis.log (and rotated copies) not found"}]
    r = [fake_record(n, f"live {n}", "warning" if n == 3 else "notice",
                     tuple(f"  line {i}" for i in range(6)) if n == 4 else ()) for n in range(1, 6)]
    server_date = datetime(2026, 12, 5, 10, 0, 0, tzinfo=UTC)
    streams = [sse(("sources", sources, None), ("record", r[0], r[0]["id"]), ("record", r[1], r[1]["id"])),
               sse(("record", r[1], r[1]["id"]), ("record", r[2], r[2]["id"]), ("record", r[3], r[3]["id"])),
               sse(("sources", unread, None))]
    asked = []

    def answer(route):
        query = query_of(route.request.url)
        if query.get("follow") != "true":
            return route.continue_()
        asked.append((query, route.request.headers))
        body = streams[min(len(asked), len(streams)) - 1] if query.get("keyword") != "refused" else None
        if body is None:
            return route.fulfill(status=400, content_type="application/json", body=json.dumps(
                {"error_code": "DCS.4800", "error_msg": "Invalid keyword in the request.", "error_ext_msg": None}))
        route.fulfill(status=200, body=body, headers={"Content-Type": "text/event-stream;charset=UTF-8",
                                                      "Date": format_datetime(server_date, usegmt=True)})

    page.route(re.compile(r"/redislog/records\?"), answer)
    panel = search_panel(page)
    panel.get_by_label("Minimum level").select_option("notice")
    switch = page.get_by_role("switch", name="Follow")
    switch.check()
    rows = page.locator("#search-results > li")
    expect(rows).to_have_count(4)
    assert record_texts(page) == [(x["id"], x["message"]) for x in r[:4]]  # r[1] came twice, shown once
    expect(page.locator('[data-notice="sources"]')).to_contain_text("not found")  # the third stream said so
    expect(panel.get_by_label("Time range")).to_be_disabled()
    first, second, third = (q for q, _ in asked[:3])
    assert first["follow"] == "true" and first["level"] == "notice"
    assert not {"start_time", "end_time", "sort_dir", "cursor", "limit"} & set(first)  # from the server's now
    assert second["cursor"] == r[1]["id"] and "start_time" not in second
    assert third["cursor"] == r[3]["id"]
    headers = asked[0][1]
    assert headers["accept"] == "text/event-stream" and headers["x-auth-token"]

    # A changed filter restarts the stream with it: no record seen yet, a reconnection starts where the
    # first connection did, by the server's clock (its Date header).
    streams[:] = [sse(("sources", sources, None))]
    before = len(asked)
    panel.get_by_label("Role").select_option("slave")
    expect(rows).to_have_count(0)
    for _ in range(50):
        if len(asked) >= before + 2:
            break
        page.wait_for_timeout(100)
    restarted, reconnected = (q for q, _ in asked[before:before + 2])
    assert restarted["role"] == "slave" and not {"start_time", "cursor"} & set(restarted)
    assert reconnected["start_time"] == str(int(server_date.timestamp() * 1000)) and "cursor" not in reconnected

    # Off: no more requests.
    switch.uncheck()
    expect(page.locator('[data-status="search"]')).to_contain_text("Follow stopped.")
    expect(panel.get_by_label("Time range")).to_be_enabled()
    settled = len(asked)
    page.wait_for_timeout(2500)
    assert len(asked) == settled

    # Leaving the tab ends it too.
    switch.check()
    expect(page.locator('[data-status="search"]')).to_contain_text(re.compile("Following|reconnecting"))
    page.get_by_role("tab", name="Run Logs").click()
    expect(page.locator("#search-follow")).not_to_be_checked()
    settled = len(asked)
    page.wait_for_timeout(2500)
    assert len(asked) == settled

    # A refusal will not pass by retrying: shown, and the switch goes off.
    page.get_by_role("tab", name="Search").click()
    panel.get_by_label("Keyword").fill("refused")
    switch.check()
    alert = page.locator('[data-alert="search"]')
    expect(alert).to_contain_text("DCS.4800")
    expect(alert).to_contain_text("Invalid keyword in the request.")
    expect(switch).not_to_be_checked()


def test_follow_shows_lines_appended_to_the_log_once_each(dcslog_server, redis_standalone, page, tmp_path):
    """Follow against the real server: lines appended to the node's log file show up within seconds,
    each once, with their continuation lines; a filter applies to the stream; off, nothing more comes."""
    from playwright.sync_api import expect

    log = tmp_path / "redis.log"
    write_multiday_log(log, days=[datetime.now(UTC).date() - timedelta(days=1)], tz=UTC, entries_per_day=50, seed=71)
    imported = off_loop(dcslog_server.import_instance, redis_standalone.url, "proj-a", "cache", "--log-file",
                        f"{redis_standalone.address}={log}")
    token = off_loop(dcslog_server.cli, "token", "create", "--project-id", "proj-a", "--role", "viewer")["token"]
    page.goto(f"{dcslog_server.url}/console#/instances/{imported['instance_id']}/search")
    sign_in_with_token(page, "proj-a", token)
    status = page.locator('[data-status="search"]')
    expect(status).to_contain_text("records")

    def append(*entries: tuple[str, str] | tuple[str, str, list[str]]) -> None:
        with open(log, "ab") as f:
            for message, level, *rest in entries:
                f.write(write_entry(datetime.now(UTC), message, level=level, pid=4321))
                for line in rest[0] if rest else []:
                    f.write(line.encode() + b"\n")
                f.flush()

    def shown() -> list[str]:
        return [message for _, message in record_texts(page)]

    switch = page.get_by_role("switch", name="Follow")
    switch.check()
    expect(status).to_have_text("Following: new records appear below as the nodes write them.")
    append(("follow one", "notice"), ("follow two", "warning"), ("follow three", "verbose"))
    rows = page.locator("#search-results > li")
    expect(rows).to_have_count(3, timeout=10_000)
    append(("crashed", "warning", ["  a continuation", "  and another"]), ("follow five", "notice"))
    expect(rows).to_have_count(5, timeout=10_000)
    page.wait_for_timeout(1500)  # nothing comes twice, however long we wait
    assert shown() == ["follow one", "follow two", "follow three", "crashed", "follow five"]
    assert len({row_id for row_id, _ in record_texts(page)}) == 5
    expect(rows.nth(3).locator(".rec-lines")).to_have_text("  a continuation\n  and another")
    expect(page.locator("#search-results > li.rec-warning")).to_have_count(2)
    expect(page.locator('[data-notice="sources"]')).to_be_hidden()

    # A keyword while following: the stream starts again with it.
    keyword = search_panel(page).get_by_label("Keyword")
    keyword.fill("keep")
    keyword.press("Enter")
    expect(rows).to_have_count(0)
    expect(status).to_have_text("Following: new records appear below as the nodes write them.")
    append(("keep 1", "notice"), ("drop 1", "notice"), ("keep 2", "warning"))
    expect(rows).to_have_count(2, timeout=10_000)
    assert shown() == ["keep 1", "keep 2"]

    switch.uncheck()
    expect(status).to_contain_text("Follow stopped. 2 records shown.")
    append(("keep 3 after the switch went off", "notice"))
    page.wait_for_timeout(1500)
    assert shown() == ["keep 1", "keep 2"]
