"""Model providers: one module per API dialect, one Protocol for all."""

from cutover.providers.base import Provider, create_provider

__all__ = ["Provider", "create_provider"]
