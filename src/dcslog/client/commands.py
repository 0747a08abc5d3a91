"""The client commands: ``dcslog groups``, ``dcslog logs …``, ``dcslog slowlog``, ``dcslog events`` against any
DCS endpoint.

``dcslog logs search|tail`` read run logs as records (dcslog's extension, not DCS's); how a
record is read, followed and printed is :mod:`dcslog.client.records`.

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
import json
import os
import re
import sys
import time
from collections.abc import Callable, Iterable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from dcslog.client.api import PAGE, ApiError, DcsApi
from dcslog.client.config import load_config
from dcslog.client.download import Downloaded, VerificationFailed, download, up_to_date
from dcslog.client.progress import StatusBoard, human_size
from dcslog.client.records import LEVELS, ROLES, RecordPrinter, RecordReader, follow, node_labels, wants_colour
from dcslog.client.timeline import TimelinePrinter, TimelineReader
from dcslog.command import (
    EXIT_COLLECTION_FAILED,
    EXIT_INTERRUPTED,
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
    fail,
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
    return _match_replica(nodes, instance_id, wanted)


def _match_replica(nodes: list[dict], instance_id: str, wanted: str) -> dict:
    """The node of ``nodes`` that ``wanted`` names (see :func:`_resolve_replica`)."""
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


def _replication_ids(nodes: list[dict], instance_id: str, wanted: list[str] | None) -> list[str]:
    """The replication ids of every ``--replica`` given (each as :func:`_match_replica` finds it), once each."""
    ids: list[str] = []
    for name in wanted or []:
        rid = str(_match_replica(nodes, instance_id, name)["replication_id"])
        if rid not in ids:
            ids.append(rid)
    return ids


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
    body = api.create_redislog_download_link(args.instance, args.file_id,
                                             None if args.format == "raw" else args.format)
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


def cmd_slowlog_top(args, api: DcsApi) -> int:
    """The window's slow commands grouped by fingerprint, command or node, the largest first."""
    if args.since is not None and args.start is not None:
        raise UsageError("--since and --from/--start are two ways to give the start: use one or the other")
    start = args.since or args.start
    body = api.list_slowlog_top(args.instance, start_time=_ms(start) if start else None,
                                end_time=_ms(args.end) if args.end else None, group_by=args.group_by,
                                sort_key=args.sort, limit=args.limit)
    if args.json:
        print_json(body)
        return EXIT_OK
    groups = body.get("groups") or []
    labels = node_labels(_nodes(api.list_group_replication_info(args.instance))) if args.group_by == "node" else {}
    rows = [{**g, "key": labels.get(str(g.get("key")), g.get("key"))} for g in groups]
    print_table(rows, [("key", args.group_by.upper()), ("count", "COUNT"), ("total_ms", "TOTAL_MS"),
                       ("avg_ms", "AVG_MS"), ("p99_ms", "P99_MS"), ("max_ms", "MAX_MS"),
                       ("last_time", "LAST_TIME"), ("sample_id", "SAMPLE_ID")])
    window = [datetime.fromtimestamp(int(body.get(k) or 0) / 1000, UTC) for k in ("start_time", "end_time")]
    print(f"{len(groups)} of {int(body.get('total_num') or 0)} groups by {args.sort}, "
          f"{window[0]:%Y-%m-%d %H:%M:%S} – {window[1]:%Y-%m-%d %H:%M:%S} UTC")
    return EXIT_OK


def cmd_events(args, api: DcsApi) -> int:
    """The newest ``--limit`` events in the window, printed oldest first (as a log reads)."""
    if args.since is not None and args.start is not None:
        raise UsageError("--since and --from/--start are two ways to give the start: use one or the other")
    start, end = args.since or args.start, args.end
    types = ",".join(t.strip() for given in args.type or [] for t in given.split(",") if t.strip()) or None
    query: dict[str, Any] = {"start_time": _ms(start) if start else None, "end_time": _ms(end) if end else None,
                             "type": types}
    events: list[dict] = []
    total = 0
    while len(events) < args.limit:
        page = api.list_events(args.instance, offset=len(events), limit=min(PAGE, args.limit - len(events)),
                               **query)
        batch = page.get("events") or []
        total = int(page.get("total_num") or 0)
        events.extend(batch)
        if not batch or len(events) >= total:
            break
    if args.json:
        print_json({"total_num": total, "events": events})
        return EXIT_OK
    rows = [{"time": e.get("time"), "node": node_address(e), "group": e.get("group_name"), "type": e.get("type"),
             "what": (e.get("details") or {}).get("message")} for e in reversed(events)]
    print_table(rows, [("time", "TIME"), ("node", "NODE"), ("group", "GROUP"), ("type", "TYPE"),
                       ("what", "DETAILS")])
    print(f"{len(events)} of {total} events" + (" (the newest; --limit for more)" if total > len(events) else ""))
    return EXIT_OK


# -- records: search and tail (dcslog's extension, SPEC section 6) ------------------------------

SEARCH_WINDOW = timedelta(hours=1)  # the endpoint's own default window
TAIL_WINDOW = timedelta(days=1)  # a quiet node writes little: look back far enough to find its last entries


def _window(args, default: timedelta) -> tuple[datetime, datetime]:
    """``--since`` (to now), or ``--from``/``--to`` (``--to`` defaults to now; ``--from`` to
    ``default`` before ``--to``), or ``default`` up to now."""
    if args.since is not None and (getattr(args, "start", None) is not None or getattr(args, "end", None) is not None):
        raise UsageError("--since and --from/--to are two ways to give the window: use one or the other")
    end = getattr(args, "end", None) or datetime.now(UTC)
    return args.since or getattr(args, "start", None) or end - default, end


def _records_setup(args, api: DcsApi) -> tuple[list[dict], list[str], RecordPrinter]:
    """The instance's nodes, the replication ids ``--replica`` names, and the printer."""
    nodes = _nodes(api.list_group_replication_info(args.instance))
    ids = _replication_ids(nodes, args.instance, args.replica)
    printer = RecordPrinter(node_labels(nodes), json_lines=args.json, colour=not args.json and wants_colour(sys.stdout))
    return nodes, ids, printer


def _warn_unread(printer: RecordPrinter, sources: Iterable[dict]) -> None:
    """A partial answer is an answer (exit status 0), and says which nodes it lacks, on stderr."""
    printer.flush()  # the records first, where both streams go to one terminal or file
    for source in sources:
        err(printer.unread_warning(source))


def cmd_logs_search(args, api: DcsApi) -> int:
    _, ids, printer = _records_setup(args, api)
    start, end = _window(args, SEARCH_WINDOW)
    query = {"start_time": _ms(start), "end_time": _ms(end), "replication_id": ",".join(ids) or None,
             "keyword": args.grep, "case": "insensitive" if args.ignore_case and args.grep else None,
             "level": args.level, "role": args.role, "sort_dir": "desc" if args.desc else "asc"}
    reader = RecordReader(api, args.instance)
    # All of them (--limit 0): one streamed answer, no paging; else pages until there are enough.
    printer.print(reader.stream(query) if args.limit == 0 else reader.pages(query, args.limit))
    _warn_unread(printer, reader.sources.unread.values())
    if reader.more:
        err(f"note: stopped at --limit {args.limit}; more records may match (a larger --limit, or 0 for all)")
    return EXIT_OK


def cmd_logs_tail(args, api: DcsApi) -> int:
    _, ids, printer = _records_setup(args, api)
    start, now = _window(args, TAIL_WINDOW)
    reader = RecordReader(api, args.instance)
    shown = reader.last({"start_time": _ms(start), "end_time": _ms(now), "replication_id": ",".join(ids) or None},
                        args.lines)
    printer.print(shown)
    _warn_unread(printer, reader.sources.unread.values())
    if not args.follow:
        return EXIT_OK
    reader.sources.news()  # reported just above

    def sources_changed(sources: list[dict]) -> None:
        reader.sources.add(sources)
        _warn_unread(printer, reader.sources.news())

    def connection_lost(exc: CommandFailed) -> None:
        printer.flush()
        err(f"warning: {exc.describe()}; following again")

    # Strictly after the last record shown (its id is the cursor), so nothing between is lost or
    # shown twice; with none shown, from the end of the window just read.
    query = {"replication_id": ",".join(ids) or None}
    after = str(shown[-1]["id"]) if shown else None
    for record in follow(api, args.instance, query, _ms(now), after, on_sources=sources_changed,
                         on_break=connection_lost):
        printer.print([record])
        printer.flush()
    return EXIT_OK  # not reached: the follow goes on until Ctrl-C or an error


def cmd_timeline(args, api: DcsApi) -> int:
    """Every item of the window (or the first ``--limit``), in the timeline's order, one a line."""
    nodes = _nodes(api.list_group_replication_info(args.instance))
    ids = _replication_ids(nodes, args.instance, args.replica)
    start, end = _window(args, SEARCH_WINDOW)
    kinds = ",".join(k.strip() for given in args.kind or [] for k in given.split(",") if k.strip()) or None
    query = {"start_time": _ms(start), "end_time": _ms(end), "replication_id": ",".join(ids) or None,
             "kind": kinds, "level": args.level}
    printer = TimelinePrinter(node_labels(nodes), json_lines=args.json,
                              colour=not args.json and wants_colour(sys.stdout))
    reader = TimelineReader(api, args.instance)
    printer.print(reader.items(query, args.limit))
    _warn_unread(printer, reader.sources.unread.values())
    if reader.more:
        err(f"note: stopped at --limit {args.limit}; more items follow (a larger --limit, or 0 for all)")
    return EXIT_OK


def _records_output(runner: Runner) -> Runner:
    """``logs search|tail``: with ``--json`` stdout is NDJSON, so an error (Ctrl-C included) is
    printed as one more line, ``{"error": {…}}``, rather than an indented object; and a reader
    that goes away (``| head``) ends the command quietly, with status 0."""
    def run_records(args: argparse.Namespace) -> int:
        try:
            return runner(args)
        except BrokenPipeError:
            # Python would complain once more when it flushes stdout at exit: point it at nothing.
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            return EXIT_OK
        except (CommandFailed, KeyboardInterrupt) as exc:
            if not getattr(args, "json", False):
                raise
            failure = exc if isinstance(exc, CommandFailed) else CommandFailed(args.interrupted, EXIT_INTERRUPTED)
            print(json.dumps({"error": failure.error_object()}, separators=(",", ":")), flush=True)
            return fail(argparse.Namespace(json=False), failure)  # the text on stderr, as for every command
    run_records.__name__ = getattr(runner, "__name__", "run_records")
    return run_records


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


def _not_negative(value: str) -> int:
    try:
        number = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r} is not a whole number") from None
    if number < 0:
        raise argparse.ArgumentTypeError(f"{value!r} must be 0 or more")
    return number


def _time_arg(value: str) -> datetime:
    return parse_time(value)


def _window_arguments(parser: argparse.ArgumentParser, *, since: str, since_default: str, end: str,
                      end_default: str, long_names: bool = True) -> None:
    """--since, or --from (--start) and --to (--end): a command's time window (dest since/start/end)."""
    start = parser.add_mutually_exclusive_group()
    start.add_argument("--since", type=_time_arg, metavar="WHEN",
                       help=f"{since}: a duration ago (30m, 1h, 2d), an ISO time (UTC unless it says), epoch ms "
                            f"(default {since_default})")
    start.add_argument("--from", *(["--start"] if long_names else []), dest="start", type=_time_arg, metavar="WHEN",
                       help="start, in the same forms")
    parser.add_argument("--to", *(["--end"] if long_names else []), dest="end", type=_time_arg, metavar="WHEN",
                        help=f"{end}, in the same forms (default {end_default})")


def add_client_commands(subparsers: argparse._SubParsersAction) -> None:
    """Add ``groups``, ``logs``, ``slowlog``, ``events`` and ``timeline`` to the ``dcslog`` command's subparsers;
    each runs through :func:`client_command`, never opening local settings or a database."""
    def command(subs, name: str, handler, help: str, records: bool = False,
                instance: bool = True) -> argparse.ArgumentParser:
        runner = client_command(handler)
        p = (add_command(subs, name, help, _records_output(runner), interrupted="interrupted") if records
             else add_command(subs, name, help, runner, interrupted=INTERRUPTED))
        p.add_argument("--instance", required=instance, metavar="INSTANCE_ID", help="the DCS instance id")
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

    logs_sub = add_group(subparsers, "logs", "run logs on a DCS endpoint: collect, list, link, download; "
                                             "search and tail them as records")
    collecting(command(logs_sub, "collect", cmd_logs_collect, "collect a replica's run log, one file per day"),
               wait_flag=True)
    command(logs_sub, "list", cmd_logs_list, "list the collected run-log files")
    link = command(logs_sub, "link", cmd_logs_link, "make a 24-hour download link (needs no credentials)")
    link.add_argument("file_id", metavar="ID", help="the file's id (from `dcslog logs list`)")
    link.add_argument("--format", choices=("raw", "ndjson"), default="raw",
                      help="raw: the log file as collected (default); ndjson: its records, one JSON object a line "
                           "(a dcslog extension)")
    dl = command(logs_sub, "download", cmd_logs_download, "download a file: resumable, size and checksum verified")
    dl.add_argument("file_id", metavar="ID", help="the file's id (from `dcslog logs list`)")
    dl.add_argument("-o", "--output", metavar="FILE", help="where to save it (default: its file name; a directory "
                                                           "keeps the name)")
    get = command(logs_sub, "get", cmd_logs_get, "collect, wait and download every day in one go")
    collecting(get, wait_flag=False)
    get.add_argument("-o", "--output", metavar="DIR", default=".", help="directory for the files (default .)")

    # `dcslog slowlog top --instance I` hands --instance to `top`: argparse would then find the parent's
    # missing, so the parent checks its own (`dcslog slowlog`) when it runs.
    slow = command(subparsers, "slowlog", cmd_slowlog, "show slow commands of every node (or `top`: grouped)",
                   instance=False)
    list_slowlog = slow.get_default("run")

    def run_slowlog(args: argparse.Namespace) -> int:
        if args.instance is None:
            slow.error("the following arguments are required: --instance")
        return list_slowlog(args)
    slow.set_defaults(run=run_slowlog)
    top = command(slow.add_subparsers(metavar="top", title="grouped"), "top", cmd_slowlog_top,
                  "the slow commands of a window grouped by fingerprint, command or node: count, total, "
                  "average, p99, max")
    top_start = top.add_mutually_exclusive_group()
    top_start.add_argument("--since", type=_time_arg, metavar="WHEN",
                           help="from then: a duration ago (30m, 1h, 2d), an ISO time (UTC unless it says), epoch ms "
                                "(default: an hour before the end)")
    top_start.add_argument("--from", "--start", dest="start", type=_time_arg, metavar="WHEN",
                           help="start, in the same forms")
    top.add_argument("--to", "--end", dest="end", type=_time_arg, metavar="WHEN",
                     help="end (included), in the same forms (default now)")
    top.add_argument("--group-by", choices=("fingerprint", "command", "node"), default="fingerprint",
                     help="fingerprint: the command without its values (default); command: its name; node")
    top.add_argument("--sort", choices=("total", "count", "max"), default="total",
                     help="largest total time (default), count or slowest first")
    top.add_argument("--limit", type=_positive(int), default=10, metavar="N", help="groups to show (default 10, "
                                                                                   "at most 100)")
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

    events = command(subparsers, "events", cmd_events,
                     "what happened to the nodes: restarts, role changes, failovers, nodes down and up")
    _window_arguments(events, since="from then", since_default="every event kept",
                      end="end (excluded)", end_default="now and on")
    events.add_argument("--type", action="append", metavar="TYPE",
                        help="only this type: restart, role_change, failover, node_down, node_up, crash, sync "
                             "(repeat, or comma-separate, for several)")
    events.add_argument("--limit", type=_positive(int), default=100, metavar="N",
                        help="the newest N events (default 100)")

    def records(p: argparse.ArgumentParser) -> None:
        p.add_argument("--replica", metavar="R", action="append",
                       help="only this node: replication id, IP:PORT or IP (repeat for several; default every node)")

    search = command(logs_sub, "search", cmd_logs_search, "search the run logs of the nodes as records", records=True)
    records(search)
    _window_arguments(search, since="from then to now", since_default="1h", end="end", end_default="now",
                      long_names=False)
    search.add_argument("--grep", metavar="KW", help="only records holding KW (in the message or a continuation line)")
    search.add_argument("-i", "--ignore-case", action="store_true", help="--grep ignores case")
    search.add_argument("--level", choices=LEVELS, help="only records at this level or above")
    search.add_argument("--role", choices=ROLES, help="only records the node wrote in this role")
    search.add_argument("--limit", type=_not_negative, default=100, metavar="N",
                        help="records to show (default 100; 0: all, streamed)")
    search.add_argument("--desc", action="store_true", help="newest first")

    timeline = command(subparsers, "timeline", cmd_timeline,
                       "what happened on the nodes, in one time order: run-log lines, slow commands, events",
                       records=True)
    timeline.add_argument("--node", "--replica", dest="replica", metavar="R", action="append",
                          help="only this node: replication id, IP:PORT or IP (repeat for several; default every "
                               "node)")
    _window_arguments(timeline, since="from then to now", since_default="1h", end="end (excluded)",
                      end_default="now")
    timeline.add_argument("--kind", action="append", metavar="KIND",
                          help="only this kind: runlog, slowlog, event (repeat, or comma-separate, for several)")
    timeline.add_argument("--level", choices=LEVELS, help="only run-log lines at this level or above")
    timeline.add_argument("--limit", type=_not_negative, default=0, metavar="N",
                          help="items to show (default 0: every item of the window, page after page)")

    tail = command(logs_sub, "tail", cmd_logs_tail, "the last records of the nodes' run logs; -f: and follow them",
                   records=True)
    records(tail)
    tail.add_argument("-n", "--lines", type=_not_negative, default=10, metavar="N",
                      help="how many records (default 10)")
    tail.add_argument("--since", type=_time_arg, metavar="WHEN",
                      help="how far back to look for them, in the forms of `logs search --since` (default 1d)")
    tail.add_argument("-f", "--follow", action="store_true", help="then print new records as they come, until Ctrl-C")
    # Before the follow was pushed by the endpoint, -f asked every --interval seconds: still accepted.
    tail.add_argument("--interval", type=_positive(float), default=1.0, help=argparse.SUPPRESS)
