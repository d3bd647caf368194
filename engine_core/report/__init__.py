"""The run report: headline figures, report files and the terminal summary."""

from engine_core.report.files import write_report
from engine_core.report.metrics import summarize
from engine_core.report.terminal import print_summary

__all__ = ["print_summary", "summarize", "write_report"]
