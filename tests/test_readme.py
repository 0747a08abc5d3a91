"""The README's tour, run as written (only the addresses changed) with bash against a real
`dcslog serve` and real redis-server nodes: one on its own, and a primary with replicas."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest

from dcslog.runlog import log_sources
from dcslog.testing.ports import free_port
from dcslog.testing.processes import stop_processes
from dcslog.testing.waiting import answers, wait_for
from tests.runlog_reference import parse, reference_day

README = Path(__file__).resolve().parent.parent / "README.md"


def tour() -> str:
    """The README's second sh block: the commands a new user pastes after `./dev serve`."""
    blocks = re.findall(r"```sh\n(.*?)```", README.read_text(), re.S)
    assert "dcslog credentials create" in blocks[1], "the README's tour moved"
    return blocks[1]


def run_tour(tmp_path: Path, node_url: str) -> tuple[Path, str]:
    """`dcslog serve` in a fresh directory, then the tour in the same directory; returns the
    directory and the tour's output."""
    port = free_port()
    script = (tour().replace("redis://127.0.0.1:6379", node_url)
              .replace("127.0.0.1:8080", f"127.0.0.1:{port}"))
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"}
    for name in [n for n in env if n.startswith("DCSLOG_")]:
        del env[name]  # the README's defaults: ./data in the current directory
    server = subprocess.Popen([shutil.which("dcslog", path=env["PATH"]), "serve", "--port", str(port)],
                              cwd=tmp_path, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for(lambda: answers(f"http://127.0.0.1:{port}"), what="dcslog serve")
        result = subprocess.run(["bash", "-e", "-o", "pipefail", "-c", script], cwd=tmp_path, env=env,
                                capture_output=True, text=True, timeout=120)
        assert result.returncode == 0, (result.stdout, result.stderr)
        return tmp_path, result.stdout
    finally:
        stop_processes(server)


def check_download(directory: Path, node) -> None:
    today = datetime.now(UTC).date().isoformat()
    saved = directory / f"redis_{node.host}_{today}.log"
    assert saved.exists(), sorted(p.name for p in directory.iterdir())
    body = saved.read_bytes()
    reference = reference_day(log_sources(node.log_file), datetime.now(UTC).date())
    # The node may log after the collection: the file is a prefix of the day, of whole lines.
    assert body and body.endswith(b"\n") and reference.startswith(body)
    assert parse(body.splitlines()[0])["day"].isoformat() == today


def test_the_readme_tour_on_a_single_node(tmp_path, redis_standalone):
    directory, output = run_tour(tmp_path, redis_standalone.url)
    assert '"status":"succeed"' in output
    check_download(directory, redis_standalone)


def test_the_readme_tour_on_a_primary_with_replicas(tmp_path, redis_replicated):
    directory, _ = run_tour(tmp_path, redis_replicated.primary.url)
    # The tour picks the last node of the group: a replica, as DCS collects.
    check_download(directory, redis_replicated.replicas[-1])


@pytest.mark.parametrize("block", [0])
def test_the_quick_start_names_the_two_commands(block):
    commands = [line.split("#")[0].strip() for line in re.findall(r"```sh\n(.*?)```", README.read_text(), re.S)[block]
                .splitlines() if line.strip()]
    assert commands == ["./dev serve", "./dev test"]
