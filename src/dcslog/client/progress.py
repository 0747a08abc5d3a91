"""Progress on stderr: redrawn in place on a terminal, plain lines when stderr is a pipe or a file.

stdout carries only results (tables, ``--json``), so ``dcslog … --json | jq``
and ``dcslog … > out`` stay clean whatever the progress display does.
"""

from __future__ import annotations

import os
import sys
import time
from typing import TextIO

from dcslog.statuses import FileStatus

CLEAR_LINE = "\r\x1b[2K"
SPINNER = "|/-\\"


def is_live(stream: TextIO) -> bool:
    """Redraw in place only on a real terminal that understands escape codes."""
    try:
        return stream.isatty() and os.environ.get("TERM", "") != "dumb"
    except (AttributeError, ValueError):
        return False


def human_size(n: float | None) -> str:
    if n is None:
        return "?"
    for unit in ("B", "KiB", "MiB", "GiB"):
        if abs(n) < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} GiB"


class ByteProgress:
    """A download's progress: a bar when live, a line per quarter otherwise."""

    WIDTH = 30

    def __init__(self, name: str, total: int | None, start: int = 0, stream: TextIO | None = None,
                 live: bool | None = None) -> None:
        self.name, self.total, self.done, self.start = name, total, start, start
        self.stream = stream or sys.stderr
        self.live = is_live(self.stream) if live is None else live
        self.began = time.monotonic()
        self._drawn = 0.0
        self._quarter = -1
        resumed = f", resuming at {human_size(start)}" if start else ""
        if not self.live:
            self._line(f"{name}: downloading {human_size(total)}{resumed}")

    def _line(self, text: str) -> None:
        print(text, file=self.stream, flush=True)

    def update(self, n: int) -> None:
        self.done += n
        if self.live:
            now = time.monotonic()
            if now - self._drawn >= 0.1:
                self._drawn = now
                self._draw()
        elif self.total:
            quarter = min(3, 4 * self.done // self.total)
            if quarter > max(self._quarter, 0) and self.done < self.total:
                self._quarter = quarter
                self._line(f"{self.name}: {25 * quarter}% ({human_size(self.done)} of {human_size(self.total)})")

    def _rate(self) -> float:
        elapsed = max(time.monotonic() - self.began, 1e-6)
        return (self.done - self.start) / elapsed

    def _draw(self) -> None:
        if self.total is not None:
            fraction = min(1.0, self.done / self.total) if self.total else 1.0
            filled = int(self.WIDTH * fraction)
            bar = "#" * filled + "." * (self.WIDTH - filled)
            text = f"{self.name}  [{bar}] {fraction:4.0%}  {human_size(self.done)}/{human_size(self.total)}"
        else:
            text = f"{self.name}  {human_size(self.done)}"
        self.stream.write(f"{CLEAR_LINE}{text}  {human_size(self._rate())}/s")
        self.stream.flush()

    def finish(self, note: str = "") -> None:
        if self.live:
            self._draw()
            self.stream.write("\n")
            self.stream.flush()
        suffix = f" {note}" if note else ""
        if not self.live:
            self._line(f"{self.name}: done, {human_size(self.done)}{suffix}")
        elif note:
            self._line(f"{self.name}: {note}")

    def abort(self) -> None:
        if self.live:
            self.stream.write("\n")
            self.stream.flush()


class StatusBoard:
    """The files of a collection and their status, until each is ``succeed`` or ``failed``.

    Live: one line per file, redrawn in place with the elapsed time. Otherwise:
    one line each time a file appears or changes status.
    """

    def __init__(self, title: str, stream: TextIO | None = None, live: bool | None = None) -> None:
        self.stream = stream or sys.stderr
        self.live = is_live(self.stream) if live is None else live
        self.title = title
        self.began = time.monotonic()
        self._seen: dict[str, str] = {}
        self._lines = 0
        self._tick = 0
        if not self.live:
            print(title, file=self.stream, flush=True)

    def show(self, files: list[dict]) -> None:
        if self.live:
            self._redraw(files)
            return
        for f in files:
            status = f.get("status", "?")
            if self._seen.get(f["id"]) != status:
                self._seen[f["id"]] = status
                detail = _detail(f)
                print(f"{f.get('file_name', f['id'])}: {status}{detail}", file=self.stream, flush=True)

    def _redraw(self, files: list[dict]) -> None:
        self._tick += 1
        elapsed = time.monotonic() - self.began
        settled = sum(1 for f in files if f.get("status") != FileStatus.CREATING)
        spin = SPINNER[self._tick % len(SPINNER)] if settled < len(files) or not files else " "
        lines = [f"{self.title}  {spin} {settled}/{len(files)} done, {elapsed:.0f}s"]
        width = max((len(f.get("file_name", f["id"])) for f in files), default=0)
        for f in files:
            lines.append(f"  {f.get('file_name', f['id']).ljust(width)}  {f.get('status', '?'):<8}{_detail(f)}")
        out = ""
        if self._lines:
            out += f"\x1b[{self._lines}F"  # back to the first line drawn last time
        out += "".join(f"\x1b[2K{line}\n" for line in lines)
        self.stream.write(out)
        self.stream.flush()
        self._lines = len(lines)

    def finish(self) -> None:
        if not self.live:
            elapsed = time.monotonic() - self.began
            print(f"settled after {elapsed:.0f}s", file=self.stream, flush=True)


def _detail(f: dict) -> str:
    if f.get("status") == FileStatus.SUCCEED and f.get("size") is not None:
        return f"  {human_size(f['size'])}"
    if f.get("status") == FileStatus.FAILED and f.get("error_msg"):
        return f"  {f['error_msg']}"
    return ""
