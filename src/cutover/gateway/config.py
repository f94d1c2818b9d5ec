"""The gateway's config file (``gateway.yaml``), validated with pydantic.

::

    listen: {host: 127.0.0.1, port: 8787}
    client_keys: [sk-client-1]
    admin_token: adm-secret-token
    store: sqlite:///gateway.db
    log: {prompts: false, redact: ["\\b\\d{16}\\b"], queue_size: 10000}
    routes:
      support-bot:
        baseline: openai:gpt-4o-mini@http://127.0.0.1:18080/v1
        candidate: {target: openai:gpt-4.1-mini@http://127.0.0.1:18080/v1, key_env: ALT_KEY}
        weight: 10
        sticky: user          # user | header:x-session-id | api_key | none
        allow: [alice]        # sticky keys pinned to the candidate
        shadow: {target: anthropic:claude-haiku-4-5, sample: 1.0, budget_usd_per_day: 5}
        retries: 1            # extra attempts on 429/5xx/unreachable, before any byte is sent
        fallback: true        # a failing candidate is answered by the baseline

A target is a ``provider:model[@url]`` string or a mapping with ``target``
plus ``key_env`` (the environment variable holding its key) and any other
Target field (``timeout_s``, ``headers``...). Unknown keys are errors, named
with the file, the line and the field.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Any, Literal, NamedTuple

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    field_validator,
    model_validator,
)

from cutover._files import load_yaml_model
from cutover.errors import GatewayConfigError, TargetSpecError
from cutover.targets import Target, parse_target

_STICKY = re.compile(r"^(user|api_key|none|header:[A-Za-z0-9_.-]+)$")


def _to_target(value: Any) -> Any:
    """A Target from ``"provider:model[@url]"`` or ``{target: ..., key_env: ..., ...}``."""
    if isinstance(value, Target):
        return value
    try:
        if isinstance(value, str):
            return parse_target(value)
        if isinstance(value, dict):
            if not isinstance(value.get("target"), str):
                raise ValueError("a target mapping needs 'target: provider:model[@url]'")
            overrides = {k: v for k, v in value.items() if k not in ("target", "key_env")}
            if "key_env" in value:
                overrides["api_key_env"] = value["key_env"]
            return parse_target(value["target"], **overrides)
    except TargetSpecError as exc:
        where = f"{exc.field}: " if exc.field else ""
        hint = f" ({exc.hint})" if exc.hint else ""
        raise ValueError(f"{where}{exc.message}{hint}") from None
    raise ValueError("a target is 'provider:model[@url]' or a mapping with 'target'")


TargetField = Annotated[Target, BeforeValidator(_to_target)]


class StickyKey(NamedTuple):
    """What decides the arm: ``kind`` is user, header, api_key or none."""

    kind: Literal["user", "header", "api_key", "none"]
    header: str | None = None


class Listen(BaseModel):
    """Where the gateway listens."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    host: str = "127.0.0.1"
    port: int = Field(default=8787, ge=0, le=65535)


class ShadowConfig(BaseModel):
    """Dual-write to a third target (see :mod:`cutover.gateway.shadow`)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    target: TargetField
    sample: float = Field(default=1.0, ge=0.0, le=1.0)
    budget_usd_per_day: float | None = Field(default=None, ge=0.0)


class LogConfig(BaseModel):
    """The request log: what is kept besides the metadata, and how much may wait."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    prompts: bool = False
    """Keep the prompt (messages) and the output text; off by default."""
    redact: tuple[str, ...] = ()
    """Regular expressions replaced by ``[REDACTED]`` in prompts and outputs."""
    live_checks: bool = True
    """Check each answer (refusal) where the record is written, for live refusal-rate gates;
    the answer's text goes to the store worker for that but is stored only with ``prompts``."""
    queue_size: int = Field(default=10_000, ge=1)
    """Records waiting for the database at most; more are dropped (and counted)."""
    batch_size: int = Field(default=500, ge=1)
    flush_interval_s: float = Field(default=0.2, gt=0.0, le=60.0)

    @field_validator("redact")
    @classmethod
    def _valid_patterns(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for pattern in value:
            try:
                re.compile(pattern)
            except re.error as exc:
                raise ValueError(f"invalid redact pattern {pattern!r}: {exc}") from None
        return value


class RouteConfig(BaseModel):
    """One alias: a baseline, optionally a candidate and its weight."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    baseline: TargetField
    candidate: TargetField | None = None
    weight: float = Field(default=0.0, ge=0.0, le=100.0)
    sticky: str = "user"
    allow: tuple[str, ...] = ()
    shadow: ShadowConfig | None = None
    retries: int = Field(default=1, ge=0, le=5)
    """Extra attempts at an upstream that could not be reached or answered 429/500/502/503/504
    (before anything was sent to the client; never after a stream has started)."""
    retry_max_wait_s: float = Field(default=1.0, ge=0.0, le=30.0)
    """The longest pause before a retry; a longer ``Retry-After`` is not waited for."""
    fallback: bool = False
    """A candidate that fails (unreachable, timeout, 429 or 5xx after retries) is answered by
    the baseline; the request is still counted as a candidate failure."""

    @field_validator("sticky")
    @classmethod
    def _valid_sticky(cls, value: str) -> str:
        if not _STICKY.match(value):
            raise ValueError(
                f"invalid sticky key '{value}'; valid: user, header:<name>, api_key, none"
            )
        return value

    @model_validator(mode="after")
    def _candidate_needed(self) -> RouteConfig:
        if self.candidate is None and self.weight > 0:
            raise ValueError("weight is above 0 but the route has no candidate")
        if self.candidate is None and self.allow:
            raise ValueError("allow pins keys to the candidate but the route has no candidate")
        return self

    @property
    def sticky_key(self) -> StickyKey:
        if self.sticky.startswith("header:"):
            return StickyKey("header", self.sticky.partition(":")[2].lower())
        kind: Literal["user", "api_key", "none"] = self.sticky  # type: ignore[assignment]
        return StickyKey(kind)


class GatewayConfig(BaseModel):
    """The whole ``gateway.yaml``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    listen: Listen = Field(default_factory=Listen)
    client_keys: tuple[Annotated[str, Field(min_length=1)], ...] = Field(min_length=1)
    admin_token: str | None = Field(default=None, min_length=1)
    store: str | None = None
    log: LogConfig = Field(default_factory=LogConfig)
    failsafe_after_s: float | None = Field(default=300.0, gt=0.0)
    """A route whose weight a rollout controller set falls back to the baseline (weight 0, in
    this gateway only) when the store has been unreachable, or the rollout's controller silent,
    for this long; ``null`` turns it off."""
    routes: dict[str, RouteConfig] = Field(min_length=1)

    @field_validator("routes")
    @classmethod
    def _alias_names(cls, value: dict[str, RouteConfig]) -> dict[str, RouteConfig]:
        for alias in value:
            if not alias.strip():
                raise ValueError("a route alias must not be empty")
        return value


def with_budget_share(config: GatewayConfig, share: float) -> GatewayConfig:
    """``config`` with every daily shadow budget scaled by ``share`` (one of N workers)."""
    if share >= 1.0:
        return config
    routes = {}
    for alias, route in config.routes.items():
        shadow = route.shadow
        if shadow is not None and shadow.budget_usd_per_day is not None:
            shadow = shadow.model_copy(
                update={"budget_usd_per_day": shadow.budget_usd_per_day * share}
            )
            route = route.model_copy(update={"shadow": shadow})
        routes[alias] = route
    return config.model_copy(update={"routes": routes})


def load_gateway_config(path: str | Path) -> GatewayConfig:
    """Read and validate ``path``; errors name the file, the line and the field."""
    return load_yaml_model(
        path,
        GatewayConfig,
        GatewayConfigError,
        expected="a mapping with 'client_keys' and 'routes'",
    )


__all__ = [
    "GatewayConfig",
    "Listen",
    "LogConfig",
    "RouteConfig",
    "ShadowConfig",
    "StickyKey",
    "load_gateway_config",
]
