"""Stopping the processes tests and benchmarks start, and tying a child's life to ours."""

from __future__ import annotations

import contextlib
import ctypes
import signal
import subprocess


def stop_processes(*procs: subprocess.Popen, sig: int = signal.SIGINT, timeout: float = 15) -> None:
    """Send ``sig`` to each process still running, then wait; kill what has not exited after ``timeout``.

    SIGINT by default: dcslog shuts down gracefully on it, as on Ctrl-C. A process stopped with
    SIGSTOP is resumed first, since it cannot act on the signal while stopped.
    """
    for proc in procs:
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                proc.send_signal(signal.SIGCONT)
                proc.send_signal(sig)
    for proc in procs:
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def die_with_parent() -> None:
    """A ``preexec_fn``: the child gets SIGTERM when its parent dies, even by SIGKILL (Linux).

    PDEATHSIG fires when the *thread* that forked exits, so use it from the main thread only.
    """
    with contextlib.suppress(Exception):
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
