"""The migration gateway: an OpenAI-compatible proxy with a sticky canary split.

Build the app from a config file::

    from cutover.gateway import Gateway, load_gateway_config

    app = Gateway(load_gateway_config("gateway.yaml")).app()

See ``docs/gateway.md`` for what this slice serves and what is still to come.
"""

from __future__ import annotations

from cutover.gateway.config import (
    GatewayConfig,
    Listen,
    RouteConfig,
    ShadowConfig,
    StickyKey,
    load_gateway_config,
)
from cutover.gateway.routing import Arm, Assignment, assign, sticky_point
from cutover.gateway.server import Gateway, run_gateway

__all__ = [
    "Arm",
    "Assignment",
    "Gateway",
    "GatewayConfig",
    "Listen",
    "RouteConfig",
    "ShadowConfig",
    "StickyKey",
    "assign",
    "load_gateway_config",
    "run_gateway",
    "sticky_point",
]
