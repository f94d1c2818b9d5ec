"""report.html in a real browser: Debian's Chromium driven by Playwright.

The page is served by a real HTTP server on a real port. Chromium is launched
with the flags this machine needs and never downloaded. Without Chromium the
test skips with the reason, unless CUTOVER_REQUIRE_SERVICES is set (CI), where
it fails.
"""

from __future__ import annotations

import functools
import http.server
import shutil
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from cutover.cli import app
from cutover.settings import Settings

CHROMIUM = "/usr/bin/chromium"
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]


def _need_browser() -> None:
    problem = None
    if not Path(CHROMIUM).exists() and shutil.which("chromium") is None:
        problem = f"Chromium not installed at {CHROMIUM} (apt-get install -y chromium)"
    else:
        try:
            import playwright.sync_api  # noqa: F401
        except ImportError as exc:
            problem = f"playwright is not installed ({exc})"
    if problem is None:
        return
    if Settings.from_env().require_services:
        pytest.fail(f"{problem} (CUTOVER_REQUIRE_SERVICES is set)", pytrace=False)
    pytest.skip(f"{problem}; set CUTOVER_REQUIRE_SERVICES=1 to make this a failure")


@pytest.fixture(scope="module")
def served_report(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    _need_browser()
    out = tmp_path_factory.mktemp("report")
    result = CliRunner().invoke(
        app, ["demo", "--out", str(out), "--db", f"sqlite:///{out / 'c.db'}"]
    )
    assert result.exit_code == 1, result.output  # the demo's gate fails on purpose
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(out))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/report.html"
    finally:
        server.shutdown()
        server.server_close()


def test_report_renders_filters_and_fetches_nothing_else(served_report: str) -> None:
    from playwright.sync_api import sync_playwright

    requested: list[str] = []
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        try:
            page = browser.new_page()
            page.on("request", lambda request: requested.append(request.url))
            page.goto(served_report)
            page.wait_for_selector("body[data-ready=true]", timeout=15_000)
            assert page.get_attribute("#gate", "data-passed") == "false"
            assert page.get_attribute("#watch", "data-slice") == "use_case=billing"
            assert page.locator("#chart-latency svg").count() == 1
            assert page.locator("#chart-slices").count() == 1
            total = page.locator(".case").count()
            regressions = page.locator(".case[data-triage=regression]").count()
            assert 0 < regressions < total
            page.select_option("#filter", "triage:regression")
            visible = page.locator(".case:not([hidden])")
            assert visible.count() == regressions
            assert set(visible.evaluate_all("els => els.map(e => e.dataset.triage)")) == {
                "regression"
            }
            page.select_option("#filter", "all")
            assert page.locator(".case:not([hidden])").count() == total
        finally:
            browser.close()
    assert requested == [served_report]  # one request: the page itself, nothing from a CDN
