"""The ``cutover`` command line: thin Typer commands over the library."""

from __future__ import annotations

import typer

from cutover import __version__
from cutover.cli.compare import compare_command
from cutover.cli.demo import demo_command
from cutover.cli.embeddings import embeddings_app
from cutover.cli.gateway import gateway_command
from cutover.cli.rollout import rollout_app
from cutover.cli.runs import report_command, runs_app
from cutover.cli.suite import suite_app

app = typer.Typer(
    name="cutover",
    help="Make changing an LLM safe: compare old vs new, with numbers a reviewer can trust.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
app.command("compare")(compare_command)
app.command("demo")(demo_command)
app.command("gateway")(gateway_command)
app.command("report")(report_command)
app.add_typer(embeddings_app, name="embeddings")
app.add_typer(rollout_app, name="rollout")
app.add_typer(runs_app, name="runs")
app.add_typer(suite_app, name="suite")


@app.command("version")
def version() -> None:
    """Print the version."""
    typer.echo(__version__)


def main() -> None:
    app()


__all__ = ["app", "main"]
