"""Reading Redis and Valkey run logs: the entry grammar, finding rotated files, cutting out one calendar day;
a container runtime's files (``containers``) and the journal (``journal``) read as the Redis log they hold."""

from dcslog.runlog.grammar import Clock, Head, match_head
from dcslog.runlog.slicer import SourceChanged, UnknownLogFormat, day_range, iter_day, write_day
from dcslog.runlog.sources import log_sources

__all__ = ["Clock", "Head", "SourceChanged", "UnknownLogFormat", "day_range", "iter_day", "log_sources",
           "match_head", "write_day"]
