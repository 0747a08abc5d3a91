"""Reading Redis run logs: finding rotated files and cutting out one calendar day."""

from dcslog.runlog.grammar import parse_line_date
from dcslog.runlog.slicer import day_range, iter_day, write_day
from dcslog.runlog.sources import log_sources

__all__ = ["day_range", "iter_day", "log_sources", "parse_line_date", "write_day"]
