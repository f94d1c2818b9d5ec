"""``cutover gateway``: serve the migration gateway from a config file."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from cutover.cli._common import cli_errors, err


def gateway_command(
    config: Annotated[
        Path, typer.Option("--config", "-c", help="The gateway config file (gateway.yaml).")
    ],
    host: Annotated[
        str | None, typer.Option("--host", help="Listen on this address (default: listen.host).")
    ] = None,
    port: Annotated[
        int | None,
        typer.Option(
            "--port", min=0, max=65535, help="Listen on this port (default: listen.port)."
        ),
    ] = None,
    workers: Annotated[
        int,
        typer.Option(
            "--workers",
            min=1,
            max=256,
            help="Gateway processes sharing the port (SO_REUSEPORT), restarted if they die.",
        ),
    ] = 1,
    reuse_port: Annotated[bool, typer.Option("--reuse-port", hidden=True)] = False,
    budget_share: Annotated[
        float, typer.Option("--budget-share", min=0.0, max=1.0, hidden=True)
    ] = 1.0,
    metrics_dir: Annotated[Path | None, typer.Option("--metrics-dir", hidden=True)] = None,
) -> None:
    """Run the OpenAI-compatible gateway: routes, sticky canary split, arm headers."""
    from cutover.gateway import load_gateway_config, run_gateway
    from cutover.gateway.config import with_budget_share
    from cutover.gateway.workers import supervise

    with cli_errors():
        cfg = load_gateway_config(config)
        bind_host = host or cfg.listen.host
        bind_port = cfg.listen.port if port is None else port
        if workers > 1:
            if bind_port == 0:
                raise typer.BadParameter("--workers needs a fixed port, not 0", param_hint="--port")
            err.print(
                f"cutover gateway: {workers} workers on http://{bind_host}:{bind_port}/v1",
                highlight=False,
            )
            raise typer.Exit(supervise(config, bind_host, bind_port, workers))
        routes = ", ".join(
            f"{alias} ({route.weight:g}% candidate)" if route.candidate else alias
            for alias, route in cfg.routes.items()
        )
        err.print(
            f"cutover gateway on http://{bind_host}:{bind_port}/v1  routes: {routes}",
            highlight=False,
            soft_wrap=True,
        )
        run_gateway(
            with_budget_share(cfg, budget_share),
            host=bind_host,
            port=bind_port,
            reuse_port=reuse_port,
            metrics_dir=metrics_dir,
        )
