"""``cutover suite check``: load a suite and say what is in it, or what is wrong."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Annotated

import typer

from cutover.cli._common import cli_errors, out

suite_app = typer.Typer(help="Work with suites.", no_args_is_help=True)


@suite_app.command("check")
def check(
    path: Annotated[Path, typer.Argument(help="Suite file.")],
    suite_format: Annotated[
        str, typer.Option("--format", help="auto, cutover, promptfoo or openai-evals.")
    ] = "auto",
) -> None:
    """Validate a suite; errors name the file, line and field."""
    from cutover.suites import load_suite

    with cli_errors():
        suite = load_suite(path, format=suite_format)
    tags: Counter[str] = Counter()
    for case in suite:
        tags.update(f"{k}={v}" for k, v in case.tags.items())
    critical = sum(c.critical for c in suite)
    asserts = sum(len(c.asserts) for c in suite)
    out.print(
        f"{path}: suite '{suite.name}', {len(suite)} cases, {critical} critical, {asserts} assertions"
    )
    if suite.targets:
        out.print("targets: " + ", ".join(f"{k}={t.spec}" for k, t in suite.targets.items()))
    for tag, count in tags.most_common(20):
        out.print(f"  {tag}: {count}")
