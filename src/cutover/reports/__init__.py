"""Reports written from a recorded run: JSON, Markdown, self-contained HTML, JUnit."""

from cutover.reports.html import write_html
from cutover.reports.json_report import REPORT_SCHEMA_VERSION, write_json_report
from cutover.reports.junit import write_junit
from cutover.reports.markdown import write_markdown

__all__ = [
    "REPORT_SCHEMA_VERSION",
    "write_html",
    "write_json_report",
    "write_junit",
    "write_markdown",
]
