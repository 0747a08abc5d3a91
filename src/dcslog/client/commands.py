"""The client commands: ``dcslog groups``, ``dcslog logs …``, ``dcslog slowlog`` against any DCS endpoint.

They never touch the local database or settings: configuration comes from the
profile file and ``DCSLOG_ENDPOINT``/``DCSLOG_PROJECT_ID``/``DCSLOG_AK``/
``DCSLOG_SK``/``DCSLOG_TOKEN`` (see :mod:`dcslog.client.config`). Results go to
stdout (a table, or JSON with ``--json``), progress and errors to stderr, and
the exit status says what happened (``dcslog.command``'s table, documented in docs/cli.md).
Each command is declared with :func:`dcslog.command.add_command`; its failures are the
client's exceptions (``ApiError``, ``ConfigError``, ``UsageError``, ``VerificationFailed``, …),
each a :class:`dcslog.command.CommandFailed` that knows its exit status.
"""

from __future__ import annotations

import argparse
import re
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from dcslog.client.api import PAGE, ApiError, DcsApi
from dcslog.client.config import load_config
from dcslog.client.download import Downloaded, VerificationFailed, download, up_to_date
from dcslog.client.progress import StatusBoard, human_size
from dcslog.command import (
    EXIT_COLLECTION_FAILED,
    EXIT_OK,
    EXIT_TIMEOUT,
    EXIT_USAGE,
    EXIT_VERIFICATION_FAILED,
    NODE_COLUMNS,
    CommandFailed,
    Runner,
    add_command,
    add_group,
    err,
    error_object,
    node_address,
    node_rows,
    print_json,
    print_table,
)
from dcslog.statuses import FileStatus

DAYS = (0, 1, 3, 7)
# What Ctrl-C says, whatever the command was doing: a download it broke off can be resumed.
INTERRUPTED = "interrupted (a partial download is kept as FILE.part: run the same command again to resume)"


class UsageError(CommandFailed):
    """A client-side problem with what was asked (an unknown replica name, …): exit status 2."""

    exit_status = EXIT_USAGE


# -- output ---------------------------------------------------------------------------------------

def _emit_result(status: int, result: dict, problems: list[str]) -> None:
    """A result under ``--json``; one that ends in an error carries ``"error"`` beside what was done."""
    if status != EXIT_OK:
        result = {**result, "error": error_object(status, "; ".join(problems))}
    print_json(result)


# -- replicas -------------------------------------------------------------------------------------

def _nodes(groups: dict) -> list[dict]:
    return node_rows(groups.get("group_list") or [])


def _resolve_replica(api: DcsApi, instance_id: str, wanted: str | None) -> dict | None:
    """The node ``--replica`` names: a replication_id, an IP:PORT, or an IP that only one node has.

    Without ``--replica``, the instance's only node (a single-node instance) or None,
    and the endpoint says what it thinks of that.
    """
    nodes = _nodes(api.list_group_replication_info(instance_id))
    if wanted is None:
        return nodes[0] if len(nodes) == 1 else None
    for node in nodes:
        if wanted in (node.get("replication_id"), node_address(node)):
            return node
    by_ip = [n for n in nodes if n.get("replication_ip") == wanted]
    if len(by_ip) == 1:
        return by_ip[0]
    if by_ip:
        raise UsageError(f"{len(by_ip)} nodes of instance {instance_id} are on {wanted}: "
                         f"name one as IP:PORT or by its replication id (`dcslog groups --instance {instance_id}`)")
    # Unknown here: send it as given, so the endpoint's own error (DCS.4800) is what the user sees.
    return {"replication_id": wanted}


# -- commands -------------------------------------------------------------------------------------

def cmd_groups(args, api: DcsApi) -> int:
    body = api.list_group_replication_info(args.instance)
    if args.json:
        print_json(body)
        return EXIT_OK
    print_table(_nodes(body), NODE_COLUMNS)
    return EXIT_OK


FILE_COLUMNS = [("id", "ID"), ("file_name", "FILE_NAME"), ("group_name", "GROUP"), ("status", "STATUS"),
                ("size_h", "SIZE"), ("time", "TIME")]


def _file_rows(files: list[dict]) -> list[dict]:
    return [{**f, "size_h": human_size(f["size"]) if f.get("size") is not None else None} for f in files]


def cmd_logs_list(args, api: DcsApi) -> int:
    files = list(api.iter_redislog(args.instance))
    if args.json:
        print_json({"total_num": len(files), "file_list": files})
        return EXIT_OK
    print_table(_file_rows(files), FILE_COLUMNS + [("error_msg", "ERROR")] if any(f.get("error_msg") for f in files)
                else FILE_COLUMNS)
    return EXIT_OK


def cmd_logs_link(args, api: DcsApi) -> int:
    body = api.create_redislog_download_link(args.instance, args.file_id)
    if args.json:
        print_json(body)
        return EXIT_OK
    print(body["link"])
    if body.get("expires_at"):
        err(f"valid until {body['expires_at']}; anyone holding the link can download the file")
    return EXIT_OK


def _collect(args, api: DcsApi) -> tuple[int, dict, list[str]]:
    """Start a collection and, with ``--wait``, follow it; returns (exit status, result, errors shown)."""
    node = _resolve_replica(api, args.instance, args.replica)
    replication_id = node.get("replication_id") if node else None
    ip = node.get("replication_ip") if node else None
    # A collection's files all carry its task id (last_task_id; backup_id from servers without it),
    # a new one for each request, refreshed files included: what was not there before the POST is
    # ours. (backup_id alone will not do: a failed refresh puts back the previous one.)
    def task_of(f: dict) -> str | None:
        return f.get("last_task_id") or f.get("backup_id")
    before = {task_of(f) for f in api.iter_redislog(args.instance)}
    try:
        api.create_redislog(args.instance, args.days, replication_id)
    except ApiError as exc:
        if node is None or not ip:
            exc.hint = (f"`dcslog groups --instance {args.instance}` lists the replicas; --replica takes a "
                        "replication id, an IP:PORT or an IP")
        raise

    def ours() -> list[dict]:
        files = [f for f in api.iter_redislog(args.instance)
                 if (ip is None or f.get("replication_ip") == ip)
                 and (task_of(f) not in before if task_of(f) else f.get("status") == FileStatus.CREATING)]
        return sorted(files, key=lambda f: str(f.get("time")))

    result = {"instance_id": args.instance, "replication_id": replication_id, "query_time": args.days, "files": []}
    if not args.wait:
        result["files"] = ours()
        return EXIT_OK, result, []
    what = "today's run log" if args.days <= 1 else f"the last {args.days} days of the run log"
    target = node_address(node) if node and ip else replication_id or "the instance"
    board = StatusBoard(f"collecting {what} of {target}")
    deadline = time.monotonic() + args.timeout
    while True:
        files = ours()
        board.show(files)
        if files and all(f.get("status") in (FileStatus.SUCCEED, FileStatus.FAILED) for f in files):
            board.finish()
            break
        if time.monotonic() >= deadline:
            board.finish()
            result["files"] = files
            problem = f"gave up after {args.timeout:g}s with files still creating (--timeout)"
            err(f"error: {problem}")
            return EXIT_TIMEOUT, result, [problem]
        time.sleep(args.interval)
    result["files"] = files
    # A refresh that failed leaves the file `succeed` with its previous content, and says why.
    problems = [f"{f.get('file_name', f['id'])} failed: {f.get('error_msg') or 'no reason given'}"
                + (" (the previous copy is kept)" if f.get("status") == FileStatus.SUCCEED else "")
                for f in files if f.get("status") == FileStatus.FAILED or f.get("error_msg")]
    for problem in problems:
        err(f"error: {problem}")
    return (EXIT_COLLECTION_FAILED if problems else EXIT_OK), result, problems


def cmd_logs_collect(args, api: DcsApi) -> int:
    status, result, problems = _collect(args, api)
    if args.json:
        _emit_result(status, result, problems)
        return status
    if not args.wait:
        err("collection started; follow it with `dcslog logs list --instance "
             f"{args.instance}` (or collect with --wait)")
    print_table(_file_rows(result["files"]), FILE_COLUMNS + [("error_msg", "ERROR")])
    return status


def _file_by_id(api: DcsApi, instance_id: str, file_id: str) -> dict | None:
    return next((f for f in api.iter_redislog(instance_id) if f.get("id") == file_id), None)


def _download_one(api: DcsApi, instance_id: str, meta: dict, dest: Path) -> Downloaded:
    size, sha256 = meta.get("size"), meta.get("sha256")
    done = up_to_date(dest, size, sha256)
    if done:
        err(f"{dest.name}: already downloaded and verified")
        return done
    link = api.create_redislog_download_link(instance_id, meta["id"])["link"]
    return download(api.http, link, dest, size=size, sha256=sha256)


def cmd_logs_download(args, api: DcsApi) -> int:
    meta = _file_by_id(api, args.instance, args.file_id)
    if meta is None:
        # Let the endpoint say it (DCS.4001 for an unknown id) rather than guess.
        api.create_redislog_download_link(args.instance, args.file_id)
        meta = {"id": args.file_id}
    name = meta.get("file_name") or f"{args.file_id}.log"
    dest = Path(args.output) if args.output else Path(name)
    if dest.is_dir():
        dest = dest / name
    result = _download_one(api, args.instance, meta, dest)
    if args.json:
        print_json({"id": meta["id"], **result.as_dict()})
    else:
        print(f"{result.path}  {result.size} bytes  sha256 {result.sha256}  (verified: {result.verified})")
    return EXIT_OK


def cmd_logs_get(args, api: DcsApi) -> int:
    args.wait = True
    status, result, problems = _collect(args, api)
    out = Path(args.output)
    out.mkdir(parents=True, exist_ok=True)
    downloads = []
    for meta in result["files"]:
        if meta.get("status") != FileStatus.SUCCEED:
            continue
        try:
            got = _download_one(api, args.instance, meta, out / (meta.get("file_name") or f"{meta['id']}.log"))
            downloads.append({"id": meta["id"], **got.as_dict()})
        except VerificationFailed as exc:
            err(f"error: {exc}")
            downloads.append({"id": meta["id"], "file": None, "error": str(exc)})
            problems.append(str(exc))
            status = max(status, EXIT_VERIFICATION_FAILED)
    if args.json:
        _emit_result(status, {**result, "downloads": downloads}, problems)
        return status
    rows = [{**f, **next((d for d in downloads if d["id"] == f["id"]), {})} for f in result["files"]]
    print_table(_file_rows(rows), [("file_name", "FILE_NAME"), ("status", "STATUS"), ("size_h", "SIZE"),
                                   ("file", "SAVED_AS"), ("error_msg", "ERROR")])
    return status


DURATION = re.compile(r"(\d+(?:\.\d+)?)\s*([smhdw])")
UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def parse_time(value: str, now: datetime | None = None) -> datetime:
    """``90s``/``15m``/``1h``/``2d``/``1w`` ago, ``now``, an ISO 8601 time (UTC unless it says), or epoch ms."""
    now = now or datetime.now(UTC)
    text = value.strip()
    if text == "now":
        return now
    match = DURATION.fullmatch(text)
    if match:
        return now - timedelta(seconds=float(match[1]) * UNITS[match[2]])
    if text.isdigit() and len(text) >= 12:
        return datetime.fromtimestamp(int(text) / 1000, UTC)
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{value!r}: expected a duration ago (30m, 1h, 2d), 'now', an ISO time or epoch milliseconds") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _ms(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)


def cmd_slowlog(args, api: DcsApi) -> int:
    since, until = args.since, args.until or datetime.now(UTC)
    query: dict[str, Any] = {"sort_key": args.sort, "sort_dir": "asc" if args.asc else "desc",
                             "command": args.command_name, "role": args.role, "min_duration": args.min_duration}
    if args.replica:
        node = _resolve_replica(api, args.instance, args.replica)
        query["replication_id"] = node.get("replication_id") if node else None
    entries: list[dict] = []
    total, lost, offset = 0, 0, args.offset
    while len(entries) < args.limit:
        page = api.list_slowlog(args.instance, _ms(since), _ms(until), offset=offset,
                                limit=min(PAGE, args.limit - len(entries)), **query)
        batch = page.get("slowlogs") or []
        total, lost = int(page.get("total_num") or 0), int(page.get("lost_entries") or 0)
        entries.extend(batch)
        offset += len(batch)
        if not batch or offset >= total:
            break
    if args.json:
        print_json({"total_num": total, "count": len(entries), "lost_entries": lost,
                    "start_time": _ms(since), "end_time": _ms(until), "slowlogs": entries})
        return EXIT_OK
    rows = []
    for e in entries:
        where = f"{e['node_ip']}:{e['node_port']}" if e.get("node_ip") else e.get("shard_name")
        command = e.get("command") or ""
        rows.append({**e, "node": where, "client": e.get("client_addr") or e.get("client_ip"),
                     "cmd": command if len(command) <= 80 else command[:79] + "…"})
    print_table(rows, [("start_time", "START_TIME"), ("duration", "DURATION_MS"), ("node", "NODE"),
                       ("node_role", "ROLE"), ("client", "CLIENT"), ("cmd", "COMMAND")])
    span = f"{since:%Y-%m-%d %H:%M:%S} – {until:%Y-%m-%d %H:%M:%S} UTC"
    print(f"{len(entries)} of {total} entries, {span}")
    if lost:
        print(f"warning: the nodes dropped {lost} entries before they could be read (slowlog-max-len too small?)")
    return EXIT_OK


# -- wiring ---------------------------------------------------------------------------------------

def client_command(handler: Callable[[argparse.Namespace, DcsApi], int]) -> Runner:
    """Run ``handler`` with an API client configured from the profile file and environment (no
    server settings, no database); its failures are ``CommandFailed``s that know their exit status."""
    def run_client(args: argparse.Namespace) -> int:
        config = load_config(args.profile)
        with DcsApi(config, timeout=args.http_timeout) as api:
            return handler(args, api)
    run_client.__name__ = handler.__name__
    return run_client


def _positive(kind: type) -> Callable[[str], Any]:
    def parse(value: str):
        try:
            number = kind(value)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{value!r} is not a number") from None
        if number <= 0:
            raise argparse.ArgumentTypeError(f"{value!r} must be greater than 0")
        return number
    return parse


def _time_arg(value: str) -> datetime:
    return parse_time(value)


def add_client_commands(subparsers: argparse._SubParsersAction) -> None:
    """Add ``groups``, ``logs`` and ``slowlog`` to the ``dcslog`` command's subparsers; each runs
    through :func:`client_command`, never opening local settings or a database."""
    def command(subs, name: str, handler, help: str) -> argparse.ArgumentParser:
        p = add_command(subs, name, help, client_command(handler), interrupted=INTERRUPTED)
        p.add_argument("--instance", required=True, metavar="INSTANCE_ID", help="the DCS instance id")
        p.add_argument("--profile", metavar="NAME",
                       help="section of the profile file to use (default: $DCSLOG_PROFILE or 'default')")
        p.add_argument("--http-timeout", type=_positive(float), default=30.0, metavar="SECONDS",
                       help="per-request network timeout (default 30)")
        return p

    def collecting(p: argparse.ArgumentParser, wait_flag: bool) -> None:
        p.add_argument("--replica", metavar="R",
                       help="replication id, IP:PORT or IP of the node (from `dcslog groups`); "
                            "optional for a single-node instance")
        p.add_argument("--days", type=int, choices=DAYS, default=0,
                       help="0 or 1: today; 3 or 7: that many days ending today (default 0)")
        if wait_flag:
            p.add_argument("--wait", action="store_true", help="follow the collection until every file is done")
        p.add_argument("--timeout", type=_positive(float), default=600.0, metavar="SECONDS",
                       help="how long to wait for the collection (default 600)")
        p.add_argument("--interval", type=_positive(float), default=1.0, metavar="SECONDS",
                       help="seconds between two looks at the files (default 1)")

    command(subparsers, "groups", cmd_groups, "show an instance's shards and replicas with their ids")

    logs_sub = add_group(subparsers, "logs", "run logs on a DCS endpoint: collect, list, link, download")
    collecting(command(logs_sub, "collect", cmd_logs_collect, "collect a replica's run log, one file per day"),
               wait_flag=True)
    command(logs_sub, "list", cmd_logs_list, "list the collected run-log files")
    link = command(logs_sub, "link", cmd_logs_link, "make a 24-hour download link (needs no credentials)")
    link.add_argument("file_id", metavar="ID", help="the file's id (from `dcslog logs list`)")
    dl = command(logs_sub, "download", cmd_logs_download, "download a file: resumable, size and checksum verified")
    dl.add_argument("file_id", metavar="ID", help="the file's id (from `dcslog logs list`)")
    dl.add_argument("-o", "--output", metavar="FILE", help="where to save it (default: its file name; a directory "
                                                           "keeps the name)")
    get = command(logs_sub, "get", cmd_logs_get, "collect, wait and download every day in one go")
    collecting(get, wait_flag=False)
    get.add_argument("-o", "--output", metavar="DIR", default=".", help="directory for the files (default .)")

    slow = command(subparsers, "slowlog", cmd_slowlog, "show slow commands of every node")
    slow.add_argument("--since", type=_time_arg, default="1h", metavar="WHEN",
                      help="start: a duration ago (30m, 1h, 2d), an ISO time (UTC unless it says), epoch ms "
                           "(default 1h)")
    slow.add_argument("--until", type=_time_arg, metavar="WHEN", help="end, in the same forms (default now)")
    slow.add_argument("--sort", choices=("start_time", "duration"), default="start_time",
                      help="order by start time or duration, largest first (default start_time)")
    slow.add_argument("--asc", action="store_true", help="smallest / oldest first")
    slow.add_argument("--limit", type=_positive(int), default=20, metavar="N", help="entries to show (default 20)")
    slow.add_argument("--offset", type=int, default=0, metavar="N", help="skip the first N entries")
    slow.add_argument("--command", dest="command_name", metavar="NAME", help="only this command (e.g. HGETALL)")
    slow.add_argument("--role", choices=("master", "slave"), help="only entries from nodes in this role")
    slow.add_argument("--replica", metavar="R", help="only this node (replication id, IP:PORT or IP)")
    slow.add_argument("--min-duration", type=float, metavar="MS", help="only entries at least this slow")
