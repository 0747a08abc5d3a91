"""The web console at /console, driven in headless Chromium: sign in, instances, Run Logs, Slow Queries.

The browser is the Debian ``chromium`` package driven by playwright (no
browser download). Every run saves a screenshot of each page under
``test-artifacts/console/`` (git-ignored); with ``DCSLOG_UPDATE_SCREENSHOTS=1``
they go to docs/console/ instead, where docs/console.md shows them.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest

from dcslog import signing
from dcslog.testing.processes import stop_processes
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
                      "console.css": "text/css; charset=utf-8", "icon.svg": "image/svg+xml"}
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
