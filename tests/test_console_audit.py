"""The console's Audit trail and Credentials views and its link revocation (issue #16 item 5), in
headless Chromium, against a real server and redis-server.

Every expectation comes from what the test did (the actions it took, the ids the CLI and the API gave
it) and from what the links and credentials answer afterwards, never from what the console shows
alone. The browser, the screenshots and the helpers are test_console.py's.
"""

from __future__ import annotations

import re

import httpx

from dcslog.services.audit import ACTIONS
from dcslog.signing import sign_request
from dcslog.testing.waiting import wait_for
from tests import test_console
from tests.test_audit import collected_site, records
from tests.test_console import STATIC, off_loop, screenshot, sign_in_with_token

# test_console's fixtures: one headless Chromium for the module, a fresh page (and its checks) per test.
browser = test_console.browser
page = test_console.page


def token(server, role: str = "admin", name: str | None = None) -> dict:
    return off_loop(server.cli, "token", "create", "--project-id", "proj-a", "--role", role,
                    *(("--name", name) if name else ()))


def collect(server, instance_id: str, operator: dict) -> dict:
    """Today's run log, collected through the API; the file once it is succeed."""
    api = f"{server.url}/v2/proj-a/instances/{instance_id}/redislog"
    headers = {"X-Auth-Token": operator["token"]}
    assert httpx.post(api, params={"log_type": "run"}, headers=headers).status_code == 204

    def settled():
        listing = httpx.get(api, params={"log_type": "run"}, headers=headers)
        files = listing.json()["file_list"] if listing.status_code == 200 else []
        return files[0] if files and files[0]["status"] == "succeed" else None
    return wait_for(settled, what="the collection")


def make_link(server, instance_id: str, file_id: str, caller: dict) -> dict:
    made = httpx.post(f"{server.url}/v2/proj-a/instances/{instance_id}/redislog/{file_id}/links",
                      headers={"X-Auth-Token": caller["token"]})
    assert made.status_code == 200, made.text
    return made.json()


def audit_rows(page) -> list[dict]:
    return page.evaluate("""() => Array.from(document.querySelectorAll('#audit-table tbody tr'), tr => ({
        id: Number(tr.dataset.auditId), action: tr.dataset.action,
        actor: tr.cells[3].querySelector('button').textContent,
        maker: (tr.querySelector('[data-field="link-maker"]') || {}).textContent || null,
        outcome: tr.cells[2].textContent, target: tr.cells[5].textContent, instance: tr.cells[4].textContent}))""")


def accept_next_dialog(page, answer: bool) -> list[str]:
    """Answer the next confirm() with ``answer``; returns the list its message will be put in."""
    messages: list[str] = []

    def handle(dialog):
        messages.append(dialog.message)
        dialog.accept() if answer else dialog.dismiss()
    page.once("dialog", handle)
    return messages


def test_the_action_filter_offers_every_action():
    html = (STATIC / "index.html").read_text()
    select = html[html.index('id="audit-action"'):html.index("</select>", html.index('id="audit-action"'))]
    assert re.findall(r"<option>([a-z.]+)</option>", select) == list(ACTIONS)


def test_audit_view_lists_what_real_actions_did(dcslog_server, redis_standalone, page, tmp_path):
    from playwright.sync_api import expect

    server = dcslog_server
    admin = token(server, name="auditor")
    instance_id, _ = off_loop(collected_site, server, redis_standalone, tmp_path)
    operator = token(server, "operator")
    viewer = token(server, "viewer")
    file = collect(server, instance_id, operator)
    link = make_link(server, instance_id, file["id"], viewer)
    assert httpx.get(link["link"]).status_code == 200
    extra = [token(server, "viewer", f"extra {i}") for i in range(18)]  # two pages of 20
    # What the test did, newest first: (action, actor).
    expected = [("token.create", None)] * 18 + [
        ("link.download", link["link_id"]), ("link.create", viewer["id"]), ("runlog.collect", operator["id"]),
        ("token.create", None), ("token.create", None), ("instance.import", None), ("token.create", None)]

    page.goto(f"{server.url}/console#/audit")
    sign_in_with_token(page, "proj-a", admin["token"])
    expect(page.get_by_role("heading", name="Audit trail")).to_be_visible()
    status = page.locator('[data-status="audit"]')
    expect(status).to_have_text(f"{len(expected)} records, newest first.")
    pager = page.locator('[data-pager="audit"]')
    expect(pager).to_contain_text(f"1–20 of {len(expected)}")
    first = audit_rows(page)
    pager.get_by_role("button", name="Next").click()
    expect(pager).to_contain_text(f"21–{len(expected)} of {len(expected)}")
    shown = first + audit_rows(page)
    assert [row["action"] for row in shown] == [action for action, _ in expected]
    assert [row["id"] for row in shown] == sorted((row["id"] for row in shown), reverse=True)
    for row, (_, actor) in zip(shown, expected, strict=True):
        if actor is not None:
            assert row["actor"] == actor, row
    # The download: the link as actor, and who made it.
    [download] = [row for row in shown if row["action"] == "link.download"]
    assert download["maker"] == f"link made by {viewer['id']} token" and download["target"] == file["id"]
    assert {row["instance"] for row in shown if row["action"] in ("runlog.collect", "link.create")} == {"audited"}
    # Never a secret on the page.
    text = page.locator("main").inner_text()
    for made in (admin, operator, viewer, *extra):
        assert made["token"] not in text
    assert link["link"].rsplit("/", 1)[1] not in text

    # Filters: an action; the maker of the link (a click on the actor); an instance; a time window.
    page.get_by_label("Action").select_option("link.create")
    expect(status).to_have_text("1 record, newest first.")
    assert [(r["action"], r["actor"]) for r in audit_rows(page)] == [("link.create", viewer["id"])]
    page.get_by_label("Action").select_option("")
    # From the download to what its link's maker did: a click on the maker.
    page.locator('#audit-table [data-field="link-maker"]').get_by_role("button", name=viewer["id"]).click()
    expect(status).to_have_text("1 record, newest first.")
    assert [(r["action"], r["actor"]) for r in audit_rows(page)] == [("link.create", viewer["id"])]
    expect(page.get_by_label("Actor")).to_have_value(viewer["id"])
    page.get_by_label("Actor").fill(operator["id"])
    page.get_by_label("Actor").press("Enter")
    expect(page.locator("#audit-table tbody tr")).to_have_attribute("data-action", "runlog.collect")
    assert [(r["action"], r["actor"]) for r in audit_rows(page)] == [("runlog.collect", operator["id"])]
    page.get_by_label("Actor").fill("")
    page.get_by_label("Instance").select_option(label="audited")
    expect(status).to_have_text("4 records, newest first.")
    assert [r["action"] for r in audit_rows(page)] == ["link.download", "link.create", "runlog.collect",
                                                       "instance.import"]
    page.evaluate("document.activeElement.blur()")
    screenshot(page, "audit.png")
    page.get_by_label("Instance").select_option("")
    page.get_by_label("Time range").select_option("custom")
    page.get_by_label("From", exact=True).fill("2020-01-01T00:00:00")
    page.get_by_label("To", exact=True).fill("2020-01-02T00:00:00")
    page.get_by_role("button", name="Show").click()
    expect(status).to_have_text("0 records, newest first.")
    expect(page.get_by_text("No records match these filters.")).to_be_visible()
    page.get_by_label("Time range").select_option("3600000")
    page.get_by_role("button", name="Show").click()
    expect(status).to_have_text(f"{len(expected)} records, newest first.")


def test_revoking_links_from_the_file_list(dcslog_server, redis_standalone, page, tmp_path):
    from playwright.sync_api import expect

    server = dcslog_server
    instance_id, _ = off_loop(collected_site, server, redis_standalone, tmp_path)
    operator = token(server, "operator")
    file = collect(server, instance_id, operator)
    elsewhere = make_link(server, instance_id, file["id"], operator)  # a link the console did not make

    page.goto(f"{server.url}/console#/instances/{instance_id}")
    sign_in_with_token(page, "proj-a", operator["token"])
    name = file["file_name"]
    with page.expect_response(lambda r: r.request.method == "POST" and r.url.endswith("/links")) as answered, \
            page.expect_download():
        page.get_by_role("button", name=f"Download {name}").click()
    made = answered.value.json()
    links_row = page.locator(f'tr[data-links-of="{file["id"]}"]')
    expect(links_row.locator(f'li[data-link-id="{made["link_id"]}"]')).to_be_visible()
    assert made["link"] not in page.locator("main").inner_text()  # its id, never the link
    assert httpx.get(made["link"]).status_code == 200

    # One link, the console's: it answers 403, the other link still serves the file.
    page.get_by_role("button", name=f"Revoke link {made['link_id']}").click()
    expect(links_row.locator(f'li[data-link-id="{made["link_id"]}"]')).to_have_attribute("data-revoked", "true")
    expect(page.locator('[data-status="run-logs"]')).to_contain_text("answers 403 now")
    refused = httpx.get(made["link"])
    assert (refused.status_code, refused.json()["error_code"]) == (403, "DCS.2004")
    assert httpx.get(elsewhere["link"]).status_code == 200

    # Every link of the file: asked first, and nothing happens on Cancel.
    revoke_all = page.get_by_role("button", name=f"Revoke links of {name}")
    asked = accept_next_dialog(page, False)
    revoke_all.click()
    wait_for(lambda: asked, what="the confirmation")
    assert name in asked[0] and "403" in asked[0]
    page.wait_for_timeout(300)
    assert httpx.get(elsewhere["link"]).status_code == 200
    accept_next_dialog(page, True)
    revoke_all.click()
    expect(page.locator('[data-status="run-logs"]')).to_contain_text(f"Every link of {name} made so far is revoked")
    assert httpx.get(elsewhere["link"]).status_code == 403
    screenshot(page, "run-logs-links.png")
    admin = token(server)
    assert [(r["target"], r["actor"]) for r in records(server, admin["token"], action="link.revoke")] == [
        (f"{file['id']}/links", operator["id"]), (f"{file['id']}/links/{made['link_id']}", operator["id"])]

    # A viewer may make links, not revoke them: the console says so.
    page.get_by_role("button", name="Sign out").click()
    page.goto(f"{server.url}/console#/instances/{instance_id}")
    sign_in_with_token(page, "proj-a", token(server, "viewer")["token"])
    accept_next_dialog(page, True)
    page.get_by_role("button", name=f"Revoke links of {name}").click()
    alert = page.locator('[data-alert="run-logs"]')
    expect(alert).to_contain_text("DCS.2003")
    expect(alert).to_contain_text("a viewer may make links, not revoke them")


def test_revoking_a_token_and_an_access_key_in_the_console(dcslog_server, page):
    from playwright.sync_api import expect

    server = dcslog_server
    admin = token(server, name="console")
    doomed = token(server, "operator", "nightly export")
    key = off_loop(server.cli, "credentials", "create", "--project-id", "proj-a", "--role", "viewer",
                   "--name", "grafana")
    theirs = off_loop(server.cli, "token", "create", "--project-id", "proj-b", "--name", "other project")
    instances = f"{server.url}/v2/proj-a/instances"
    assert httpx.get(instances, headers={"X-Auth-Token": doomed["token"]}).status_code == 200

    page.goto(f"{server.url}/console#/credentials")
    sign_in_with_token(page, "proj-a", admin["token"])
    tokens = page.locator("#tokens-table tbody tr")
    expect(tokens).to_have_count(2)
    assert tokens.evaluate_all("rows => rows.map(r => r.dataset.tokenId)") == [admin["id"], doomed["id"]]
    expect(page.locator(f'tr[data-token-id="{doomed["id"]}"]')).to_contain_text("nightly export")
    expect(page.locator("#keys-table tbody tr")).to_have_count(1)
    expect(page.locator(f'tr[data-access-key="{key["access_key"]}"]')).to_contain_text("grafana")
    text = page.locator("main").inner_text()
    for secret in (admin["token"], doomed["token"], key["secret_key"]):
        assert secret not in text
    assert theirs["id"] not in text and "other project" not in text
    screenshot(page, "credentials.png")

    # Cancel: nothing revoked.
    revoke = page.get_by_role("button", name=f"Revoke token {doomed['id']}")
    asked = accept_next_dialog(page, False)
    revoke.click()
    wait_for(lambda: asked, what="the confirmation")
    assert doomed["id"] in asked[0] and "nightly export" in asked[0] and "cannot be undone" in asked[0]
    page.wait_for_timeout(300)
    assert httpx.get(instances, headers={"X-Auth-Token": doomed["token"]}).status_code == 200

    # Confirmed: the token is refused from its next request on, and gone from the list.
    accept_next_dialog(page, True)
    revoke.click()
    expect(page.locator('[data-status="credentials"]')).to_contain_text(f"Revoked token {doomed['id']}")
    expect(tokens).to_have_count(1)
    refused = httpx.get(instances, headers={"X-Auth-Token": doomed["token"]})
    assert (refused.status_code, refused.json()["error_code"]) == (401, "DCS.1001")

    accept_next_dialog(page, True)
    page.get_by_role("button", name=f"Revoke access key {key['access_key']}").click()
    expect(page.get_by_text("No access keys")).to_be_visible()
    signed = httpx.get(instances, headers=sign_request(key["access_key"], key["secret_key"], "GET", instances))
    assert (signed.status_code, signed.json()["error_code"]) == (401, "DCS.1001")

    # The Audit trail has both, by this console's caller.
    page.get_by_role("link", name="Audit trail").click()
    page.get_by_label("Action").select_option("token.revoke")
    expect(page.locator('[data-status="audit"]')).to_have_text("1 record, newest first.")
    [row] = audit_rows(page)
    assert (row["actor"], row["target"], row["outcome"]) == (admin["id"], doomed["id"], "succeeded")
    assert [(r["actor"], r["actor_type"]) for r in records(server, admin["token"], action="credential.revoke")] == [
        (admin["id"], "token")]


def test_who_is_not_an_admin_is_told_so(dcslog_server, page):
    from playwright.sync_api import expect

    server = dcslog_server
    operator = token(server, "operator")
    page.goto(f"{server.url}/console#/instances")
    sign_in_with_token(page, "proj-a", operator["token"])
    expect(page.get_by_role("heading", name="Instances")).to_be_visible()
    nav = page.get_by_role("navigation", name="Project")
    expect(nav.get_by_role("link", name="Instances")).to_be_visible()
    expect(nav.get_by_role("link", name="Audit trail")).to_be_hidden()  # asked once: not an admin
    expect(nav.get_by_role("link", name="Credentials")).to_be_hidden()

    # Opened anyway (a link, a bookmark): a clear refusal, and nothing else of the view.
    for view, alert in (("audit", '[data-alert="audit"]'), ("credentials", '[data-alert="credentials"]')):
        page.goto(f"{server.url}/console#/{view}")
        expect(page.locator(alert)).to_contain_text("DCS.2003")
        expect(page.locator(alert)).to_contain_text("This view is for the admin role")
        expect(page.locator("[data-admin-only]")).to_be_hidden()

    # An admin is offered both.
    page.get_by_role("button", name="Sign out").click()
    sign_in_with_token(page, "proj-a", token(server)["token"])
    expect(nav.get_by_role("link", name="Credentials")).to_be_visible()
    nav.get_by_role("link", name="Credentials").click()
    expect(page.locator("#tokens-table tbody tr")).to_have_count(2)
    expect(nav.get_by_role("link", name="Credentials")).to_have_attribute("aria-current", "page")
