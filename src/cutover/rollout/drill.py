"""The rollback drill: move a test cohort to the candidate and back, time each switch per replica.

A sticky key is on the candidate when its point (BLAKE2b of the key onto
[0, 100)) is below the weight. The drill picks a synthetic key (the test
cohort) whose point lies just above the route's current weight ``w``, in
``[w, w + width)``, raises the weight to ``w + width`` through the store
(audited, actor ``drill``) and polls every gateway's
``GET /admin/routes/{alias}/arm?key=...`` until each serves the key on the
candidate; then sets ``w`` back and waits until each serves it on the
baseline again. Each replica's time is from the store's commit to the first
poll that sees the new arm (polled every 5 ms, so it is exact to about 5 ms
plus one local HTTP round trip). At weight 100 the cohort is taken from just
below instead (candidate -> baseline -> candidate).

Real users whose point also falls in that slice (``width`` percent of keys,
0.01% by default) take the same two switches; with ``width`` that small and
the switch lasting about a second, that is the price of drilling on the real
path rather than on a copy.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from dataclasses import dataclass
from typing import Any

import aiohttp

from cutover.gateway.routing import sticky_point
from cutover.rollout.controller import RolloutError
from cutover.store import Store

DEFAULT_WIDTH = 0.01
POLL_S = 0.005
ACTOR = "drill"


@dataclass(frozen=True, slots=True)
class Switch:
    """One switch: the arm the cohort moved to and each replica's time to serve it (s)."""

    to_arm: str
    seconds: dict[str, float | None]
    """Gateway URL -> seconds from the commit, ``None`` if it did not switch in time."""

    @property
    def worst(self) -> float | None:
        values = list(self.seconds.values())
        return None if any(v is None for v in values) else max(v for v in values if v is not None)


@dataclass(frozen=True, slots=True)
class DrillResult:
    route: str
    key: str
    weight: float
    drill_weight: float
    switches: tuple[Switch, Switch]

    def to_dict(self) -> dict[str, Any]:
        return {
            "route": self.route,
            "cohort_key": self.key,
            "weight": self.weight,
            "drill_weight": self.drill_weight,
            "switches": [
                {"to": s.to_arm, "seconds": s.seconds, "worst": s.worst} for s in self.switches
            ],
        }


def cohort_key(alias: str, low: float, high: float) -> str:
    """A synthetic sticky key whose point for ``alias`` lies in ``[low, high)``."""
    for i in itertools.count():
        key = f"cutover-drill-{i}"
        point, _ = sticky_point(alias, key)
        if low <= point < high:
            return key
    raise AssertionError("unreachable")  # pragma: no cover


async def drill(
    store: Store,
    route: str,
    gateways: list[str],
    *,
    admin_token: str,
    width: float = DEFAULT_WIDTH,
    timeout_s: float = 10.0,
) -> DrillResult:
    """Run the drill (see the module docs); the route's weight is restored whatever happens."""
    row = await asyncio.to_thread(store.gateway_route, route)
    if row is None:
        raise RolloutError(f"route '{route}' is not in the store", field="route")
    if row.candidate is None:
        raise RolloutError(f"route '{route}' has no candidate to drill", field="route")
    if not gateways:
        raise RolloutError("name at least one gateway (--gateway URL)", field="gateway")
    rollout = await asyncio.to_thread(store.latest_rollout, route)
    if rollout is not None and rollout.active:
        raise RolloutError(
            f"route '{route}' has an active rollout ({rollout.id[:12]}, {rollout.status}): "
            "drill before or after it, not during it (the drill's weight changes would race "
            "the controller's)",
            field="route",
        )
    weight = row.weight
    up = weight + width <= 100.0
    drill_weight = weight + width if up else weight - width
    key = cohort_key(route, *((weight, drill_weight) if up else (drill_weight, weight)))
    first, back = ("candidate", "baseline") if up else ("baseline", "candidate")
    headers = {"Authorization": f"Bearer {admin_token}"}
    async with aiohttp.ClientSession(headers=headers) as http:
        await _expect(http, gateways, route, key, back)
        try:
            there = await _switch(store, http, gateways, route, key, drill_weight, first, timeout_s)
        finally:
            again = await _switch(store, http, gateways, route, key, weight, back, timeout_s)
    return DrillResult(route, key, weight, drill_weight, (there, again))


async def _arm(http: aiohttp.ClientSession, gateway: str, route: str, key: str) -> str:
    url = f"{gateway.rstrip('/')}/admin/routes/{route}/arm"
    async with http.get(url, params={"key": key}) as resp:
        body = await resp.json()
        if resp.status != 200:
            raise RolloutError(
                f"{gateway}: {resp.status} {body.get('error', {}).get('message', body)}",
                field="gateway",
            )
        return str(body["arm"])


async def _expect(
    http: aiohttp.ClientSession, gateways: list[str], route: str, key: str, arm: str
) -> None:
    for gateway in gateways:
        seen = await _arm(http, gateway, route, key)
        if seen != arm:
            raise RolloutError(
                f"{gateway} serves the drill cohort on the {seen} arm, not the {arm}: "
                "the replicas disagree on the weight; fix that before drilling",
                field="gateway",
            )


async def _switch(
    store: Store,
    http: aiohttp.ClientSession,
    gateways: list[str],
    route: str,
    key: str,
    weight: float,
    arm: str,
    timeout_s: float,
) -> Switch:
    await asyncio.to_thread(
        store.set_gateway_route_weight, route, weight, actor=ACTOR, action="drill"
    )
    committed = time.perf_counter()

    async def watch(gateway: str) -> float | None:
        while time.perf_counter() - committed < timeout_s:
            if await _arm(http, gateway, route, key) == arm:
                return time.perf_counter() - committed
            await asyncio.sleep(POLL_S)
        return None

    times = await asyncio.gather(*(watch(g) for g in gateways))
    return Switch(arm, dict(zip(gateways, times, strict=True)))


__all__ = ["DrillResult", "Switch", "cohort_key", "drill"]
