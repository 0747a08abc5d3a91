#!/usr/bin/env python3
"""Benchmark: cutting one day out of a container runtime's log file, against the plain log.

Generates (or reuses) bench/slice_day.py's synthetic legacy log (one ~100 MiB day, 15 Nov 2026)
under bench/out/, writes it again as a CRI log (containerd's ``<time> stdout F <line>``) and as
a Docker ``json-file`` log (lines escaped as Go's encoder does: ``<`` ``>`` ``&`` as ``\\u00XX``),
then, warm cache, times ``write_day`` of the day from each (best of --reps, in this process) and
checks the three days are the same bytes. Reports MiB/s of the day's (unwrapped) bytes.

    python bench/container_slice.py [--size-gib 0.6] [--reps 3] [--keep]
"""

from __future__ import annotations

import argparse
import hashlib
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "src"))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.slice_day import OUT, TARGET, generate  # noqa: E402
from dcslog.runlog.slicer import write_day  # noqa: E402

MIB = 1 << 20


def wrap_file(plain: Path, out: Path, shape: str) -> None:
    """Write ``plain`` again as a container log, one wrapper line per line, times increasing."""
    ns = 0
    with open(plain, "rb") as f, open(out, "wb") as o:
        batch = []
        for line in f:
            ns += 1_000
            stamp = b"2026-11-15T10:%02d:%02d.%09dZ" % (ns // 60_000_000_000 % 60, ns // 10**9 % 60, ns % 10**9)
            if shape == "cri":
                batch.append(stamp + b" stdout F " + line)
            else:
                text = line[:-1].replace(b"<", b"\\u003c").replace(b">", b"\\u003e").replace(b"&", b"\\u0026")
                batch.append(b'{"log":"' + text + b'\\n","stream":"stdout","time":"' + stamp + b'"}\n')
            if len(batch) >= 100_000:
                o.write(b"".join(batch))
                batch.clear()
        o.write(b"".join(batch))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size-gib", type=float, default=0.6, help="plain log size (default 0.6)")
    ap.add_argument("--reps", type=int, default=3, help="timed repetitions (default 3)")
    ap.add_argument("--keep", action="store_true", help="keep the generated logs for the next run")
    args = ap.parse_args()
    OUT.mkdir(exist_ok=True)
    plain = OUT / f"container-plain-{args.size_gib}.log"
    cri_dir, docker_dir = OUT / f"container-cri-{args.size_gib}", OUT / f"container-docker-{args.size_gib}"
    logs = {"plain": plain, "cri": cri_dir / "0.log", "docker": docker_dir / "abc-json.log"}
    if not plain.exists():
        generate("legacy", plain, int(args.size_gib * (1 << 30)))
    for shape, directory in (("cri", cri_dir), ("docker", docker_dir)):
        directory.mkdir(exist_ok=True)
        if not logs[shape].exists():
            wrap_file(plain, logs[shape], shape)
    digests = {}
    try:
        for name, path in logs.items():
            best, size = float("inf"), 0
            for _ in range(args.reps):
                out = OUT / f"container-day-{name}.log"
                fd = os.open(out, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
                started = time.perf_counter()
                size = write_day(str(path), TARGET, fd)
                best = min(best, time.perf_counter() - started)
                os.close(fd)
            digests[name] = hashlib.sha256(out.read_bytes()).hexdigest()
            out.unlink()
            print(f"{name:7} {path.stat().st_size / MIB:7.0f} MiB file  {size / MIB:5.0f} MiB day  "
                  f"{best * 1000:7.0f} ms  {size / best / MIB:6.0f} MiB/s")
    finally:
        if not args.keep:
            for path in logs.values():
                path.unlink(missing_ok=True)
    same = len(set(digests.values())) == 1
    print("days identical" if same else f"days differ: {digests}")
    return 0 if same else 1


if __name__ == "__main__":
    sys.exit(main())
