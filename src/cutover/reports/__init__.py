"""Reports written from a recorded run: JSON now; Markdown, HTML, JUnit build on it."""

from cutover.reports.json_report import REPORT_SCHEMA_VERSION, write_json_report

__all__ = ["REPORT_SCHEMA_VERSION", "write_json_report"]
