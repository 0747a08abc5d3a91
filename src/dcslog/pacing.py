"""Scans give way to requests: a run-log scan (a search, an export, a follow) runs in a thread
of the API process and competes with the request loop for the GIL. While the loop lags — its
timer fires late because it is busy with requests — each long scan, at every block it reads,
sleeps for as long as needed to work at most ``SHARE`` of the time; while the loop keeps up,
scans run at full speed. Short scans (a page of a short window, a follow's poll) are never
paced: they are what a client waits for, and a follow's own writes make the loop lag (pacing it
took follow's p99 from 0.43 s to 1.9 s at 10,000 lines/s). With it, `bench/search_http.py`'s
mix keeps its p99 (1.04–1.11×, 1.79× before) while two 1 GiB searches run (docs/benchmarks.md).

The loop side is :func:`watch_loop` (a task of the API's lifetime); the scan side is
``PACER.pause(scanned)``, called by :mod:`dcslog.runlog.records` before each read. A process without
the watcher (the agent, the worker, tests calling the scans directly) never pauses.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable

#: The share of the time a scan may work while the loop lags (the rest it sleeps, GIL released).
SHARE = 0.25
#: A timer of the loop firing this late means requests are waiting. A busy scan thread alone
#: delays it by up to the interpreter's switch interval (5 ms), so the bar is above that.
LAG = 0.010
#: How often the loop is sampled, and how long one late sample keeps scans paced.
TICK = 0.020
HOLD = 0.25
#: The work counted before one pause, at most (a scan's first block after a quiet spell).
MAX_WORK = 0.020
#: The bytes a scan reads before it is paced.
LONG_SCAN = 8 << 20


class Pacer:
    def __init__(self, clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        self._clock, self._sleep = clock, sleep
        self._lagging_until = 0.0
        self._since = threading.local()  # per scan thread: when it last paused

    def lagged(self, lag: float) -> None:
        """The loop's timer fired ``lag`` seconds late."""
        if lag > LAG:
            self._lagging_until = self._clock() + HOLD

    def pause(self, scanned: int) -> None:
        """Called by a scan between two blocks, having read ``scanned`` bytes: a long scan sleeps
        while the loop lags, for (1 - SHARE) / SHARE times the work done since this thread's last
        pause."""
        now = self._clock()
        since = getattr(self._since, "t", None)
        self._since.t = now
        if scanned < LONG_SCAN or since is None or now >= self._lagging_until:
            return
        worked = min(now - since, MAX_WORK)
        self._sleep(worked * (1 - SHARE) / SHARE)
        self._since.t = self._clock()


PACER = Pacer()


async def watch_loop(pacer: Pacer = PACER) -> None:
    """Sample the running loop's lateness every ``TICK`` until cancelled."""
    loop = asyncio.get_running_loop()
    while True:
        t = loop.time()
        await asyncio.sleep(TICK)
        pacer.lagged(loop.time() - t - TICK)
