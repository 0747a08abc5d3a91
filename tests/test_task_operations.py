"""DCS task operations through the official SDK: ShowBackgroundTaskProgress moving with the bytes a
collection cuts, and DeleteBackgroundTask of a queued, a running and a finished task.

The cuts here are held: every day is sliced from the real log file (a big one) as the worker
would, then written to the staged file a MiB at a time, each MiB only when the test lets it
through (``HeldCuts``). A collection is then running for exactly as long as a test needs it to,
whatever the machine's speed: nothing here depends on how long anything takes.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import tempfile
import threading
from collections.abc import Iterator

import pytest
from huaweicloudsdkcore.exceptions.exceptions import ClientRequestException
from huaweicloudsdkdcs.v2 import (
    CreateRedislogRequest,
    DeleteBackgroundTaskRequest,
    ListBackgroundTaskRequest,
    ListRedislogRequest,
    ShowBackgroundTaskProgressRequest,
)
from sqlalchemy import select

from dcslog.db.models import LogFile
from dcslog.db.session import create_engine, create_sessionmaker
from dcslog.services import collection
from dcslog.storage import open_object_store
from dcslog.testing.waiting import wait_for
from tests.backend_fixtures import BACKENDS
from tests.test_faults import big_day
from tests.test_redislog import day_lines, download, today_utc, wait_settled

MIB = 1 << 20
UNKNOWN_TASK = "00000000-0000-4000-8000-000000000000"


class HeldCuts:
    """Every day cut writes the real day (the slicer's bytes) a MiB at a time, each MiB once the
    test lets it through (``let_through``), or freely while ``opened``. Also keeps, by object key,
    each cut's ``abandon`` flag (what the worker sets to stop the run) and how it ended."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, scratch_dir):
        self._permits = threading.Semaphore(0)
        self._open = threading.Event()
        self.abandon: dict[str, threading.Event] = {}
        self.outcome: dict[str, str] = {}
        real_write_day, real_cut = collection.write_day, collection.cut_day_retrying

        def held_write_day(logfile, day, out_fd, tz=None):
            with tempfile.TemporaryFile(dir=scratch_dir) as scratch:
                real_write_day(logfile, day, scratch.fileno(), tz)
                scratch.seek(0)
                written = 0
                while chunk := scratch.read(MIB):
                    while not self._open.is_set() and not self._permits.acquire(timeout=0.05):
                        pass
                    view = memoryview(chunk)
                    while view:
                        view = view[collection.os.write(out_fd, view):]
                    written += len(chunk)
                return written

        def watched_cut(store, write, key, abandon, progress=None):
            self.abandon[key] = abandon
            try:
                result = real_cut(store, write, key, abandon, progress)
            except collection.Abandoned:
                self.outcome[key] = "abandoned"
                raise
            self.outcome[key] = "published"
            return result

        monkeypatch.setattr(collection, "write_day", held_write_day)
        monkeypatch.setattr(collection, "cut_day_retrying", watched_cut)

    def let_through(self, mib: int = 1) -> None:
        for _ in range(mib):
            self._permits.release()

    def open(self) -> None:
        self._open.set()

    def hold(self) -> None:
        self._open.clear()

    def key_of(self, task_id: str) -> str:
        return wait_for(lambda: next((key for key in self.abandon if f"/{task_id}-" in key), None),
                        what=f"task {task_id}'s cut to start")


@contextlib.contextmanager
def opened_at_exit(cuts: HeldCuts) -> Iterator[None]:
    try:
        yield
    finally:
        cuts.open()


@pytest.fixture
def held_cuts(monkeypatch, tmp_path) -> Iterator[HeldCuts]:
    """Request it after the server, or open it before the server stops: a held cut would keep the
    stopping worker (and the test) waiting for ever."""
    cuts = HeldCuts(monkeypatch, tmp_path)
    yield cuts
    cuts.open()


def progress(client, instance_id: str, task_id: str):
    return client.show_background_task_progress(
        ShowBackgroundTaskProgressRequest(instance_id=instance_id, task_id=task_id))


def delete_task(client, instance_id: str, task_id: str):
    return client.delete_background_task(DeleteBackgroundTaskRequest(instance_id=instance_id, task_id=task_id))


def task_ids(client, instance_id: str) -> list[str]:
    return [t.id for t in client.list_background_task(ListBackgroundTaskRequest(instance_id=instance_id)).tasks or []]


def collect(client, instance_id: str) -> str:
    """Queue a collection of today; returns its task id."""
    before = set(task_ids(client, instance_id))
    client.create_redislog(CreateRedislogRequest(instance_id=instance_id, log_type="run"))
    [task_id] = set(task_ids(client, instance_id)) - before
    return task_id


def dcs_error(call) -> ClientRequestException:
    with pytest.raises(ClientRequestException) as caught:
        call()
    return caught.value


def file_rows(settings) -> list[LogFile]:
    async def read() -> list[LogFile]:
        engine = create_engine(settings.effective_database_url)
        try:
            async with create_sessionmaker(engine)() as session:
                return list(await session.scalars(select(LogFile)))
        finally:
            await engine.dispose()
    return asyncio.run(read())


def import_with_log(server, redis_node, log_file) -> str:
    return server.import_instance(redis_node.url, "proj-a", "node", "--log-file",
                                  f"{redis_node.address}={log_file}")["instance_id"]


@pytest.mark.parametrize("backend_env", BACKENDS, indirect=True)
def test_progress_moves_with_the_bytes_cut_and_ends_at_100(backend_env, dcslog_server, held_cuts, redis_standalone,
                                                           tmp_path):
    content = big_day(today_utc(), 6)
    log_file = tmp_path / "node.log"
    log_file.write_bytes(content)
    instance_id = import_with_log(dcslog_server, redis_standalone, log_file)
    viewer = dcslog_server.sdk(role="viewer")  # reading progress is a viewer's right
    task_id = collect(dcslog_server.sdk(role="operator"), instance_id)

    seen: list[int] = []

    def reached(percent: int):
        shown = progress(viewer, instance_id, task_id)
        seen.append(shown.progress)
        return shown if shown.progress >= percent else None

    mib = math.ceil(len(content) / MIB)
    for cut in range(1, mib):  # all but the last MiB: the task is still running after each
        held_cuts.let_through(1)
        percent = 100 * cut * MIB // len(content)
        shown = wait_for(lambda percent=percent: reached(percent), what=f"progress after {cut} MiB")
        assert shown.progress < 100
        assert shown.remain_time >= 0  # bytes were cut: the rate gives an estimate
        [step] = shown.step_details
        assert step.step_status == "EXECUTING" and step.end_time is None
        [sub_step] = step.sub_step_details
        cut_so_far = int(sub_step.detail.split()[0])
        assert cut * MIB <= cut_so_far < len(content), sub_step.detail
    held_cuts.open()
    [item] = wait_settled(viewer, instance_id)
    assert item.status == "succeed" and item.backup_id == task_id

    done = progress(viewer, instance_id, task_id)
    seen.append(done.progress)
    assert (done.progress, done.remain_time) == (100, 0)
    [step] = done.step_details
    assert (step.step_id, step.step_status, step.error_code) == (item.id, "FINISH", None)
    assert step.step_name.endswith(item.file_name) and step.begin_time and step.end_time
    assert step.sub_step_details[0].detail == f"{len(content)} bytes"
    assert seen == sorted(seen), seen  # never backwards
    assert len({percent for percent in seen if 0 < percent < 100}) >= mib - 1, seen


@pytest.mark.parametrize("backend_env", BACKENDS, indirect=True)
def test_deleting_a_running_task_cancels_it_cleanly(backend_env, held_cuts, dcslog_env, dcslog_server_factory,
                                                    redis_standalone, tmp_path):
    """A refresh is deleted mid-cut: the run is told to stop at once (by its progress report:
    the lease renewal alone would take 100 s here) and publishes nothing, the file is back to its
    previous copy, and the worker — one job at a time — then runs the next collection."""
    log_file = tmp_path / "node.log"
    first = day_lines(today_utc(), 40, "first ")
    log_file.write_bytes(first)
    with dcslog_server_factory(worker_concurrency="1", job_lease="300") as server, opened_at_exit(held_cuts):
        instance_id = import_with_log(server, redis_standalone, log_file)
        client = server.sdk(role="operator")
        held_cuts.open()
        first_task = collect(client, instance_id)
        [item] = wait_settled(client, instance_id)
        assert item.status == "succeed" and item.backup_id == first_task

        held_cuts.hold()
        second = big_day(today_utc(), 4, "second ")
        log_file.write_bytes(second)
        cancelled = collect(client, instance_id)
        key = held_cuts.key_of(cancelled)
        held_cuts.let_through(1)
        wait_for(lambda: progress(client, instance_id, cancelled).progress > 0, what="the refresh to cut a MiB")

        assert delete_task(client, instance_id, cancelled).message == "The task was cancelled and deleted."
        wait_for(held_cuts.abandon[key].is_set, what="the run to be told to stop")
        # At once: the task is gone, and the file is back to its previous copy, saying why.
        assert task_ids(client, instance_id) == [first_task]
        error = dcs_error(lambda: progress(client, instance_id, cancelled))
        assert (error.status_code, error.error_code) == (404, "DCS.4001")
        [item] = client.list_redislog(ListRedislogRequest(instance_id=instance_id, log_type="run")).file_list
        assert (item.status, item.backup_id) == ("succeed", first_task)
        assert download(client, instance_id, item.id).content == first
        [row] = file_rows(server.settings)
        assert (row.task_id, row.content_task_id) == (cancelled, first_task)
        assert row.error_msg and row.error_msg.startswith("Cancelled")

        # Let the held cut end: the run, told to stop, publishes nothing and leaves nothing.
        held_cuts.open()
        next_task = collect(client, instance_id)  # runs once the cancelled run let the worker go
        [item] = wait_settled(client, instance_id)
        assert held_cuts.outcome[key] == "abandoned"
        assert (item.status, item.backup_id) == ("succeed", next_task)
        assert download(client, instance_id, item.id).content == second
        assert progress(client, instance_id, next_task).progress == 100
        store = open_object_store(server.settings)
        assert not list(store.staging.directory.glob("*.part"))
        assert [k for k in store.keys(0) if cancelled in k or first_task in k] == []  # the refresh replaced the first
        [row] = file_rows(server.settings)
        assert (row.task_id, row.content_task_id, row.error_msg) == (next_task, next_task, None)


def test_deleting_a_finished_task_keeps_its_files(dcslog_server, redis_standalone, tmp_path):
    log_file = tmp_path / "node.log"
    log_file.write_bytes(day_lines(today_utc(), 30))
    instance_id = import_with_log(dcslog_server, redis_standalone, log_file)
    client = dcslog_server.sdk(role="operator")
    task_id = collect(client, instance_id)
    [item] = wait_settled(client, instance_id)

    assert delete_task(client, instance_id, task_id).message == "The task was deleted."
    assert task_ids(client, instance_id) == []
    # The file is not the task's to take: it stays, with its backup_id and its own retention.
    [still] = client.list_redislog(ListRedislogRequest(instance_id=instance_id, log_type="run")).file_list
    assert (still.id, still.status, still.backup_id) == (item.id, "succeed", task_id)
    assert download(client, instance_id, item.id).content == log_file.read_bytes()
    for call in (lambda: progress(client, instance_id, task_id), lambda: delete_task(client, instance_id, task_id)):
        error = dcs_error(call)
        assert (error.status_code, error.error_code) == (404, "DCS.4001")


def test_a_failed_task_is_at_100_and_its_step_says_why(dcslog_server, redis_standalone, tmp_path):
    instance_id = import_with_log(dcslog_server, redis_standalone, tmp_path / "missing.log")
    client = dcslog_server.sdk(role="operator")
    task_id = collect(client, instance_id)
    [item] = wait_settled(client, instance_id)
    assert item.status == "failed"
    shown = progress(client, instance_id, task_id)
    assert (shown.progress, shown.remain_time) == (100, 0)
    [step] = shown.step_details
    assert (step.step_id, step.step_status) == (item.id, "FAILED")
    assert "not found" in step.sub_step_details[0].detail


def test_a_queued_task_its_deletion_and_the_errors(dcslog_server_factory, redis_standalone, redis_node_factory,
                                                    tmp_path):
    log_file = tmp_path / "node.log"
    log_file.write_bytes(day_lines(today_utc(), 10))
    with dcslog_server_factory(run_worker=False) as server:
        instance_id = import_with_log(server, redis_standalone, log_file)
        other_instance = server.import_instance(redis_node_factory("127.0.0.3").url, "proj-a", "other")["instance_id"]
        operator, viewer = server.sdk(role="operator"), server.sdk(role="viewer")
        task_id = collect(operator, instance_id)

        queued = progress(viewer, instance_id, task_id)
        assert (queued.progress, queued.remain_time) == (0, -1)
        assert [s.step_status for s in queued.step_details] == ["WAITING"]

        # Errors, each in the DCS envelope the SDK reads.
        cases = [
            (lambda: delete_task(viewer, instance_id, task_id), 403, "DCS.2003"),  # deleting takes an operator
            (lambda: progress(viewer, instance_id, UNKNOWN_TASK), 404, "DCS.4001"),
            (lambda: delete_task(operator, instance_id, UNKNOWN_TASK), 404, "DCS.4001"),
            # Another instance's task, in the same project.
            (lambda: progress(viewer, other_instance, task_id), 404, "DCS.4001"),
            (lambda: delete_task(operator, other_instance, task_id), 404, "DCS.4001"),
            (lambda: progress(viewer, "not-a-uuid", task_id), 400, "DCS.4061"),
        ]
        # Another project's instance: not found, as if it did not exist.
        stranger = server.sdk(project_id="proj-b", role="admin")
        cases += [(lambda: progress(stranger, instance_id, task_id), 404, "DCS.3022"),
                  (lambda: delete_task(stranger, instance_id, task_id), 404, "DCS.3022")]
        for call, status, code in cases:
            error = dcs_error(call)
            assert (error.status_code, error.error_code) == (status, code)
            assert error.error_msg
        assert progress(viewer, instance_id, task_id).progress == 0  # still there

        assert delete_task(operator, instance_id, task_id).message == "The task was cancelled and deleted."
        # Never collected before: the file is failed, saying why; and the day may be collected again.
        [item] = operator.list_redislog(ListRedislogRequest(instance_id=instance_id, log_type="run")).file_list
        assert item.status == "failed"
        [row] = file_rows(server.settings)
        assert row.error_msg and row.error_msg.startswith("Cancelled")
        again = collect(operator, instance_id)
        assert task_ids(operator, instance_id) == [again]
