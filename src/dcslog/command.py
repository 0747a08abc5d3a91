"""How every ``dcslog`` command is declared, run and reported: the server, admin and client commands alike.

* :func:`add_command` declares a command (its parser, ``--json``, and the function that runs it);
  :func:`add_group` a command with subcommands (``dcslog logs …``).
* :func:`run` runs the parsed command and turns its failure into an exit status from the one
  table below (documented in docs/cli.md, "Exit statuses"): the message on stderr and, with
  ``--json``, one JSON error object on stdout, always with the same keys.
* :func:`print_table` and :func:`print_json` print results; a missing value in a table is ``-``.

A command fails by raising :class:`CommandFailed` (the client's errors are subclasses) or a
:class:`dcslog.errors.DcsError` (what the admin commands and the services raise). This module
imports nothing heavy: the client commands and ``dcslog agent`` start without SQLAlchemy.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from dcslog import errors

# The exit statuses of every dcslog command. Scripts rely on them: never renumber.
EXIT_OK = 0
EXIT_ERROR = 1  # refused: the endpoint answered with a DCS error, or an admin command failed
EXIT_USAGE = 2  # bad arguments (argparse's own status), or the client is not configured
EXIT_COLLECTION_FAILED = 3  # a collected file ended `failed`, or its refresh failed (previous copy kept)
EXIT_VERIFICATION_FAILED = 4  # a download's size or SHA-256 is not what the API said
EXIT_UNREACHABLE = 5  # no answer from the endpoint, or a download broke off (kept for resume)
EXIT_TIMEOUT = 6  # --wait gave up (--timeout) with files still `creating`
EXIT_INTERRUPTED = 130  # Ctrl-C (128 + SIGINT, as a shell reports a process the signal ended)

EXIT_STATUSES = {EXIT_OK: "success", EXIT_ERROR: "refused", EXIT_USAGE: "usage",
                 EXIT_COLLECTION_FAILED: "collection failed", EXIT_VERIFICATION_FAILED: "verification failed",
                 EXIT_UNREACHABLE: "unreachable", EXIT_TIMEOUT: "timeout", EXIT_INTERRUPTED: "interrupted"}

Runner = Callable[[argparse.Namespace], int]


class CommandFailed(Exception):
    """A command's failure: its exit status and message (stderr: ``error: MESSAGE``; with
    ``--json``, :meth:`error_object` on stdout). Subclasses set ``exit_status`` for their kind."""

    exit_status = EXIT_ERROR

    def __init__(self, message: str, exit_status: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        if exit_status is not None:
            self.exit_status = exit_status

    def describe(self) -> str:
        """The message shown after ``error: `` (and as ``error_msg`` unless the endpoint gave one)."""
        return self.message

    def notes(self) -> list[str]:
        """Lines printed on stderr after the error: how to fix it."""
        return []

    def error_fields(self) -> dict[str, Any]:
        """The DCS fields of the JSON error: the endpoint's when it answered with an error, else null."""
        return {"status": None, "error_code": None, "error_msg": self.describe(), "error_ext_msg": None,
                "request_id": None}

    def error_object(self) -> dict[str, Any]:
        return {"exit_status": self.exit_status, **self.error_fields()}


class AdminFailed(CommandFailed):
    """A :class:`DcsError` from an admin command (or the agent's start-up): exit status 1. Its
    ``error_ext_msg`` (how to fix it) goes on a line of its own; the JSON error carries its DCS
    code when it is one the API has too (an unknown instance: DCS.3022), not the generic one."""

    def __init__(self, exc: errors.DcsError) -> None:
        super().__init__(exc.error_msg, EXIT_ERROR)
        self.dcs_error = exc

    def notes(self) -> list[str]:
        return [self.dcs_error.error_ext_msg] if self.dcs_error.error_ext_msg else []

    def error_fields(self) -> dict[str, Any]:
        specific = type(self.dcs_error) is not errors.DcsError
        return {"status": None, "error_code": self.dcs_error.error_code if specific else None,
                "error_msg": self.dcs_error.error_msg, "error_ext_msg": self.dcs_error.error_ext_msg,
                "request_id": None}


def error_object(exit_status: int, message: str) -> dict[str, Any]:
    """The JSON error of a failure that is not an endpoint's answer (a result that ends in an error)."""
    return CommandFailed(message, exit_status).error_object()


# -- output ---------------------------------------------------------------------------------------

def print_json(value: Any) -> None:
    print(json.dumps(value, indent=2, default=str))


Column = str | tuple[str, str]  # a row key (its heading is the key in capitals), or (key, heading)


def print_table(rows: Sequence[dict], columns: Iterable[Column]) -> None:
    """Rows under headings, columns two spaces apart, no trailing spaces; a missing, null or
    empty value is ``-`` (so every row has as many words as the heading); no rows: ``(none)``."""
    if not rows:
        print("(none)")
        return
    pairs = [(c, c.upper()) if isinstance(c, str) else c for c in columns]
    cells = [["-" if r.get(key) is None or r.get(key) == "" else str(r.get(key)) for key, _ in pairs] for r in rows]
    widths = [max(len(heading), *(len(row[i]) for row in cells)) for i, (_, heading) in enumerate(pairs)]
    print("  ".join(heading.ljust(w) for (_, heading), w in zip(pairs, widths, strict=True)).rstrip())
    for row in cells:
        print("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip())


def err(message: str) -> None:
    """A line on stderr (progress, warnings, errors): stdout stays the result alone."""
    print(message, file=sys.stderr, flush=True)


# The nodes of an instance, as `dcslog groups` and `dcslog instances show|import|refresh` print them.
NODE_COLUMNS: list[Column] = [("group_name", "GROUP"), ("replication_id", "REPLICATION_ID"),
                              ("replication_role", "ROLE"), ("address", "ADDRESS"), ("status", "STATUS"),
                              ("log", "LOG_FILE")]


def node_address(node: dict) -> str:
    port = node.get("replication_port")
    return f"{node.get('replication_ip')}:{port}" if port else str(node.get("replication_ip"))


def node_rows(group_list: list[dict]) -> list[dict]:
    """One row per node of ``group_list`` (ListGroupReplicationInfo's): its group, address, and the
    log file dcslog reads or why there is none."""
    return [{**node, "group_name": group.get("group_name"), "address": node_address(node),
             "log": node.get("log_file") or node.get("log_file_error")}
            for group in group_list or [] for node in group.get("replication_list") or []]


# -- declaring and running ------------------------------------------------------------------------

class CommandParser(argparse.ArgumentParser):
    """Every ``dcslog`` parser: a usage error with ``--json`` among the arguments is also printed
    as the JSON error on stdout, like every other error (argparse's text stays on stderr)."""

    wants_json = False

    def parse_known_args(self, args=None, namespace=None):
        self.wants_json = "--json" in (sys.argv[1:] if args is None else args)
        return super().parse_known_args(args, namespace)

    def error(self, message: str):
        if self.wants_json:
            print_json({"error": error_object(EXIT_USAGE, message)})
        super().error(message)


def add_command(subparsers: argparse._SubParsersAction, name: str, help: str, run: Runner, *,
                json_output: bool = True, interrupted: str = "interrupted") -> argparse.ArgumentParser:
    """Declare ``dcslog … NAME``: ``run(args)`` does the work and returns the exit status (or
    raises a failure). ``json_output`` adds ``--json`` (commands that print a result);
    ``interrupted`` is what Ctrl-C says."""
    parser = subparsers.add_parser(name, help=help, description=help)
    parser.set_defaults(run=run, interrupted=interrupted)
    if json_output:
        parser.add_argument("--json", action="store_true", help="print JSON on stdout")
    return parser


def add_group(subparsers: argparse._SubParsersAction, name: str, help: str) -> argparse._SubParsersAction:
    """Declare ``dcslog NAME SUBCOMMAND …``; returns where its subcommands are added. (No ``dest``:
    a missing subcommand is then named by its choices, ``{collect,list,…}``, in the usage error.)"""
    return subparsers.add_parser(name, help=help, description=help).add_subparsers(required=True)


def fail(args: argparse.Namespace, failure: CommandFailed) -> int:
    """Report ``failure``: ``error: …`` and its notes on stderr, the JSON error on stdout with ``--json``."""
    err(f"error: {failure.describe()}")
    for note in failure.notes():
        err(note)
    if getattr(args, "json", False):
        print_json({"error": failure.error_object()})
    return failure.exit_status


def run(args: argparse.Namespace) -> int:
    """Run the command ``args`` was parsed for; returns its exit status."""
    try:
        return args.run(args)
    except CommandFailed as exc:
        return fail(args, exc)
    except errors.DcsError as exc:
        return fail(args, AdminFailed(exc))
    except KeyboardInterrupt:
        return fail(args, CommandFailed(getattr(args, "interrupted", "interrupted"), EXIT_INTERRUPTED))
