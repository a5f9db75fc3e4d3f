"""`detector report`: a replay or bench run as one self-contained HTML page to investigate it."""

from detector.offline.report.page import write_report

__all__ = ["write_report"]
