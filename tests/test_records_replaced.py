"""A records search whose collected day is replaced while it reads (PostgreSQL + S3): a newer
collection of the day publishes a new object and deletes the one the search planned to read —
on S3 the search's ranged GETs come after its plan, so it finds the object gone. The search
plans again, once, and answers from the newer copy (before: 500 DCS.5000, found by
tests/test_revocation_everywhere.py under load)."""

from __future__ import annotations

import httpx
import pytest
from huaweicloudsdkdcs.v2 import CreateRedislogRequest

from dcslog.services import records
from dcslog.testing.waiting import wait_for
from tests.test_audit import Sdk, collected_site
from tests.test_redislog import today_utc, wait_settled


@pytest.mark.parametrize("backend_env", ["postgres-s3"], indirect=True)
def test_a_day_replaced_during_a_search_is_read_again(backend_env, dcslog_env, monkeypatch, redis_standalone,
                                                       tmp_path):
    from tests.dcslog_fixtures import started_server

    with started_server(monkeypatch) as server:
        instance_id, log_file = collected_site(server, redis_standalone, tmp_path)
        sdk = Sdk(server, server.credentials(role="operator"))
        sdk.client.create_redislog(CreateRedislogRequest(instance_id=instance_id, log_type="run"))
        [first] = wait_settled(sdk.client, instance_id)
        # The host's log is gone: the collected day is the only source of its records.
        content = log_file.read_bytes()  # collected_site's 30 entries of today
        log_file.unlink()
        token = server.cli("token", "create", "--project-id", "proj-a")["token"]
        url = f"{server.url}/v2/proj-a/instances/{instance_id}/redislog/records"
        real_read_page = records.read_page
        replaced: list[str] = []

        def read_page_after_a_recollection(plans, *args, **kwargs):
            if not replaced:  # the first read: the day is collected again (and the old object deleted) first
                log_file.write_bytes(content)
                sdk.client.create_redislog(CreateRedislogRequest(instance_id=instance_id, log_type="run"))
                wait_for(lambda: [f for f in wait_settled(sdk.client, instance_id)
                                  if f.backup_id != first.backup_id and f.status == "succeed"],
                         what="the day collected again")
                log_file.unlink()
                replaced.append(first.id)
            return real_read_page(plans, *args, **kwargs)

        monkeypatch.setattr(records, "read_page", read_page_after_a_recollection)
        answer = httpx.get(url, params={"start_time": 0, "limit": 1000}, headers={"X-Auth-Token": token},
                           timeout=60)
        assert answer.status_code == 200, answer.text
        assert replaced
        day = today_utc()
        assert sorted(r["message"] for r in answer.json()["records"]) == sorted(f"entry {i} of {day}"
                                                                             for i in range(30))
