"""The one Protocol every provider implements, and the factory that picks one.

A provider turns a :class:`~cutover.records.ModelRequest` into an
:class:`~cutover.records.Observation` for one :class:`~cutover.targets.Target`.
It measures its own latency and time to first token, reports tokens, and
raises a :class:`~cutover.errors.ProviderError` subclass on failure (the
retry policy and the runner decide what to do with it). It does not price,
retry or rate-limit: that is :mod:`cutover.calls`.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

from cutover.records import ModelRequest, Observation
from cutover.targets import Target


@runtime_checkable
class Provider(Protocol):
    """One API dialect bound to one target."""

    target: Target

    async def complete(self, request: ModelRequest) -> Observation:
        """Call the model once; raise a ``ProviderError`` subclass on failure."""
        ...

    async def aclose(self) -> None:
        """Release connections."""
        ...


def create_provider(target: Target) -> Provider:
    """The provider for ``target.provider``; heavy modules are imported lazily."""
    if target.provider == "openai":
        from cutover.providers.openai import OpenAIProvider

        return OpenAIProvider(target)
    if target.provider == "anthropic":
        from cutover.providers.anthropic import AnthropicProvider

        return AnthropicProvider(target)
    if target.provider == "sim":
        from cutover.providers.sim import SimProvider

        return SimProvider(target)
    if target.provider == "replay":
        from cutover.providers.replay import ReplayProvider

        return ReplayProvider(target)
    raise AssertionError(f"unreachable: Target validated provider {target.provider!r}")


__all__ = ["Provider", "create_provider"]
