"""The suite's warning policy (pyproject.toml, ``filterwarnings``): a warning raised from dcslog's
own code fails the test that caused it; other modules' warnings are only reported."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

CASES = '''
import warnings


def test_warning_from_a_dcslog_module():
    code = compile("import warnings\\nwarnings.warn('from dcslog')", "dcslog/fake.py", "exec")
    exec(code, {"__name__": "dcslog.fake"})


def test_library_warning_raised_at_dcslog_code():
    library = {"__name__": "somelib"}
    exec("import warnings\\ndef old():\\n    warnings.warn('old', DeprecationWarning, stacklevel=2)\\n", library)
    exec(compile("old()", "dcslog/caller.py", "exec"), {"__name__": "dcslog.caller", "old": library["old"]})


def test_warning_from_another_module():
    exec(compile("import warnings\\nwarnings.warn('not ours')", "other.py", "exec"), {"__name__": "dcslogish"})
'''


def test_a_warning_from_dcslog_code_fails_the_test(tmp_path):
    (tmp_path / "test_cases.py").write_text(CASES)
    done = subprocess.run([sys.executable, "-m", "pytest", "-c", str(ROOT / "pyproject.toml"), "--rootdir",
                           str(tmp_path), "-p", "no:cacheprovider", "-q", str(tmp_path / "test_cases.py")],
                          cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert "2 failed, 1 passed" in done.stdout, done.stdout + done.stderr
    failed = {line.split("::")[-1].split()[0] for line in done.stdout.splitlines() if line.startswith("FAILED ")}
    assert failed == {"test_warning_from_a_dcslog_module", "test_library_warning_raised_at_dcslog_code"}
