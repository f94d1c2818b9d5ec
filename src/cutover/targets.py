"""Targets: what is being compared (provider + model + prompt version + params).

A target is written ``provider:model`` with an optional base URL after ``@``::

    openai:gpt-4o-mini
    openai:my-model@http://127.0.0.1:8000/v1
    anthropic:claude-sonnet-4-5
    sim:fast-v2
    replay:path/to/outputs.jsonl

or defined by name in a targets file (YAML) that adds a prompt version,
params, price override, limits and timeouts::

    targets:
      old:
        target: openai:gpt-4o-mini
        prompt_version: v3
        system: "You are a support agent."
        params: {temperature: 0}
        rpm: 500
        price: {input_per_mtok: 0.15, output_per_mtok: 0.6}
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from functools import cached_property
from pathlib import Path
from typing import Any

import orjson
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from cutover._files import read_yaml_file
from cutover.errors import TargetSpecError

KNOWN_PROVIDERS = ("openai", "anthropic", "sim", "replay")

_SPEC = re.compile(r"^(?P<provider>[a-z][a-z0-9_-]*):(?P<model>.+?)(?:@(?P<url>https?://\S+))?$")


class Price(BaseModel):
    """A price override in US dollars per million tokens (private deployments)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    input_per_mtok: float = Field(ge=0)
    output_per_mtok: float = Field(ge=0)


class Target(BaseModel):
    """One side of a comparison. Immutable; ``key`` is its identity hash."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    provider: str
    model: str
    base_url: str | None = None
    name: str | None = None
    prompt_version: str | None = None
    system: str | None = None
    params: dict[str, Any] = Field(default_factory=dict)
    api_key_env: str | None = None
    headers: dict[str, str] = Field(default_factory=dict)
    price: Price | None = None
    concurrency: int | None = Field(default=None, ge=1)
    rpm: float | None = Field(default=None, gt=0)
    tpm: float | None = Field(default=None, gt=0)
    timeout_s: float = Field(default=60.0, gt=0)
    max_retries: int = Field(default=4, ge=0, le=20)
    stream: bool = True

    @field_validator("provider")
    @classmethod
    def _known_provider(cls, value: str) -> str:
        if value not in KNOWN_PROVIDERS:
            raise ValueError(
                f"unknown provider '{value}'; valid providers: {', '.join(KNOWN_PROVIDERS)}"
            )
        return value

    @property
    def spec(self) -> str:
        """The ``provider:model[@url]`` string."""
        url = f"@{self.base_url}" if self.base_url else ""
        return f"{self.provider}:{self.model}{url}"

    @property
    def label(self) -> str:
        """How the target is shown: its name, else its spec (plus prompt version)."""
        base = self.name or self.spec
        if self.prompt_version and not self.name:
            base += f"#{self.prompt_version}"
        return base

    @property
    def simulated(self) -> bool:
        return self.provider == "sim"

    @cached_property
    def key(self) -> str:
        """Identity hash: what changes the outputs (not limits, not timeouts)."""
        ident = {
            "provider": self.provider,
            "model": self.model,
            "base_url": self.base_url,
            "prompt_version": self.prompt_version,
            "system": self.system,
            "params": self.params,
        }
        return hashlib.sha256(orjson.dumps(ident, option=orjson.OPT_SORT_KEYS)).hexdigest()[:32]


def parse_target(spec: str, **overrides: Any) -> Target:
    """Parse ``provider:model[@base_url]`` into a Target."""
    text = spec.strip()
    match = _SPEC.match(text)
    if not match:
        raise TargetSpecError(
            f"invalid target '{spec}'",
            hint="write provider:model or provider:model@http://host:port/v1, "
            f"provider one of {', '.join(KNOWN_PROVIDERS)}",
        )
    provider = match["provider"]
    if provider not in KNOWN_PROVIDERS:
        raise TargetSpecError(
            f"unknown provider '{provider}' in target '{spec}'",
            hint=f"valid providers: {', '.join(KNOWN_PROVIDERS)}",
        )
    fields: dict[str, Any] = {
        "provider": provider,
        "model": match["model"],
        "base_url": match["url"],
    }
    fields.update(overrides)
    try:
        return Target(**fields)
    except ValidationError as exc:
        raise _spec_error(exc, source=spec) from None


def _spec_error(exc: ValidationError, *, source: str, path: str | None = None) -> TargetSpecError:
    first = exc.errors()[0]
    loc = ".".join(str(p) for p in first["loc"])
    return TargetSpecError(first["msg"], path=path, field=loc or None, hint=f"in {source}")


def load_targets_file(path: str | Path) -> dict[str, Target]:
    """Read named targets from a YAML file (``targets: {name: {target: ..., ...}}``)."""
    p = Path(path)
    data = read_yaml_file(p, TargetSpecError)
    if not isinstance(data, dict) or not isinstance(data.get("targets"), dict):
        raise TargetSpecError(
            "expected a mapping with a 'targets' mapping of name -> target", path=str(p)
        )
    return targets_from_mapping(data["targets"], path=str(p))


def targets_from_mapping(
    entries: Mapping[str, Any], *, path: str | None = None
) -> dict[str, Target]:
    """Build named targets from ``{name: "spec"}`` or ``{name: {target: spec, ...}}``."""
    out: dict[str, Target] = {}
    for name, entry in entries.items():
        if isinstance(entry, str):
            entry = {"target": entry}
        if not isinstance(entry, dict) or "target" not in entry:
            raise TargetSpecError(
                "each target needs a 'target: provider:model[@url]' entry",
                path=path,
                field=f"targets.{name}",
            )
        extra = {k: v for k, v in entry.items() if k != "target"}
        try:
            out[str(name)] = parse_target(str(entry["target"]), **extra)
        except TargetSpecError as exc:
            field = f"targets.{name}" + (f".{exc.field}" if exc.field else "")
            raise TargetSpecError(exc.message, path=path, field=field, hint=exc.hint) from None
    return out


def resolve_target(spec_or_name: str, named: Mapping[str, Target] | None = None) -> Target:
    """A name from a targets file, else a ``provider:model[@url]`` spec."""
    if named and spec_or_name in named:
        return named[spec_or_name]
    if ":" not in spec_or_name:
        known = ", ".join(sorted(named)) if named else "none defined"
        raise TargetSpecError(
            f"'{spec_or_name}' is neither a provider:model target nor a named target",
            hint=f"named targets: {known}",
        )
    return parse_target(spec_or_name)


__all__ = [
    "KNOWN_PROVIDERS",
    "Price",
    "Target",
    "load_targets_file",
    "parse_target",
    "resolve_target",
    "targets_from_mapping",
]
