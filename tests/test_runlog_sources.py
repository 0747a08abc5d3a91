import os

from dcslog.runlog.sources import log_sources


def touch(path, mtime=None):
    open(path, "wb").close()
    if mtime is not None:
        os.utime(path, (mtime, mtime))


def names(paths):
    return [os.path.basename(p) for p in paths]


def test_numbered_oldest_first_current_last(tmp_path):
    for n in ["redis.log", "redis.log.1", "redis.log.2.gz", "redis.log.10.gz", "redis.log.3"]:
        touch(tmp_path / n)
    got = log_sources(str(tmp_path / "redis.log"))
    assert names(got) == ["redis.log.10.gz", "redis.log.3", "redis.log.2.gz", "redis.log.1", "redis.log"]
    assert all(os.path.dirname(p) == str(tmp_path) for p in got)


def test_dateext_ordered_by_date(tmp_path):
    for n in ["redis.log", "redis.log-20261126.gz", "redis.log-20261124", "redis.log-20261125.gz",
              "redis.log-2026112612"]:
        touch(tmp_path / n)
    assert names(log_sources(str(tmp_path / "redis.log"))) == [
        "redis.log-20261124", "redis.log-20261125.gz", "redis.log-20261126.gz", "redis.log-2026112612",
        "redis.log"]


def test_missing_current_file_and_missing_dir(tmp_path):
    touch(tmp_path / "redis.log.1")
    assert names(log_sources(str(tmp_path / "redis.log"))) == ["redis.log.1"]
    assert log_sources(str(tmp_path / "nope" / "redis.log")) == []
    assert log_sources(str(tmp_path / "other.log")) == []


def test_unrelated_names_ignored(tmp_path):
    for n in ["redis.log", "redis.log.bak", "redis.log.1.tmp", "redis.logx.1", "other.log.1",
              "redis.log-backup", "redis.log.gz", "xredis.log.1", "redis.log.1.gz.1"]:
        touch(tmp_path / n)
    assert names(log_sources(str(tmp_path / "redis.log"))) == ["redis.log"]


def test_uncompressed_twin_wins_while_compressing(tmp_path):
    for n in ["redis.log", "redis.log.1", "redis.log.1.gz", "redis.log.2.gz"]:
        touch(tmp_path / n)
    assert names(log_sources(str(tmp_path / "redis.log"))) == ["redis.log.2.gz", "redis.log.1", "redis.log"]


def test_mixed_schemes_merged_by_mtime(tmp_path):
    touch(tmp_path / "redis.log-20261120.gz", 1000)
    touch(tmp_path / "redis.log-20261121", 2000)
    touch(tmp_path / "redis.log.2.gz", 3000)
    touch(tmp_path / "redis.log.1", 4000)
    touch(tmp_path / "redis.log", 5000)
    assert names(log_sources(str(tmp_path / "redis.log"))) == [
        "redis.log-20261120.gz", "redis.log-20261121", "redis.log.2.gz", "redis.log.1", "redis.log"]


def test_relative_path(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    touch(tmp_path / "redis.log")
    touch(tmp_path / "redis.log.1")
    assert log_sources("redis.log") == ["redis.log.1", "redis.log"]
