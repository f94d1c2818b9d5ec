"""The admin API: read the routes, set a candidate's weight, roll back; all audited.

Every endpoint needs ``Authorization: Bearer <admin_token>`` (compared in
constant time); without an ``admin_token`` in the config the API is closed.

- ``GET /admin/routes``: each alias with its baseline and candidate specs
  (``provider:model[@url]``, never a key), weight and version.
- ``POST /admin/routes/{alias}/weight`` ``{"weight": 0-100, "actor": "..."}``.
- ``POST /admin/routes/{alias}/rollback`` ``{"actor": "..."}``: weight 0 at once.
- ``GET /admin/audit?limit=N``: the newest changes (who, when, before, after).
- ``GET /admin/routes/{alias}/arm?key=K``: the arm this replica gives sticky key ``K``
  now (no upstream call); ``cutover rollout drill`` polls it on every replica.

Errors are OpenAI-shaped: 400 naming the field, 401, 404 for an unknown alias.
"""

from __future__ import annotations

import hmac
import math
from typing import TYPE_CHECKING, Any

import orjson
from aiohttp import web

from cutover.gateway._errors import error_response
from cutover.gateway.routing import assign
from cutover.store._routes import AuditRow, RouteRow

if TYPE_CHECKING:
    from cutover.gateway.server import Gateway

DEFAULT_ACTOR = "admin"
MAX_ACTOR = 200
MAX_AUDIT = 1000
_NO_HEADERS: dict[str, str] = {}


def _json(data: Any, status: int = 200) -> web.Response:
    return web.Response(status=status, body=orjson.dumps(data), content_type="application/json")


def _bad(field: str, message: str) -> web.Response:
    return error_response(
        400, message, error_type="invalid_request_error", param=field, headers=_NO_HEADERS
    )


class AdminAPI:
    """The ``/admin`` endpoints of one :class:`~cutover.gateway.server.Gateway`."""

    def __init__(self, gateway: Gateway) -> None:
        self.gateway = gateway
        token = gateway.config.admin_token
        self._token = token.encode("utf-8") if token else None

    def register(self, app: web.Application) -> None:
        app.router.add_get("/admin/routes", self.routes)
        app.router.add_post("/admin/routes/{alias}/weight", self.set_weight)
        app.router.add_post("/admin/routes/{alias}/rollback", self.rollback)
        app.router.add_get("/admin/audit", self.audit)
        app.router.add_get("/admin/routes/{alias}/arm", self.arm)

    # -- auth -----------------------------------------------------------------------

    def _denied(self, request: web.Request) -> web.Response | None:
        if self._token is None:
            return error_response(
                401,
                "the admin API is closed: set 'admin_token' in the gateway config",
                error_type="authentication_error",
                headers=_NO_HEADERS,
            )
        scheme, _, given = request.headers.get("Authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(
            given.strip().encode("utf-8"), self._token
        ):
            return error_response(
                401,
                "invalid admin token: send 'Authorization: Bearer <admin_token>'",
                error_type="authentication_error",
                headers=_NO_HEADERS,
            )
        return None

    # -- endpoints ------------------------------------------------------------------

    async def routes(self, request: web.Request) -> web.Response:
        if (denied := self._denied(request)) is not None:
            return denied
        state = self.gateway.route_state
        views = [self._view(row) for row in state.rows()]
        return _json({"routes": views, "shared": state.shared})

    def _not_found(self, alias: str) -> web.Response:
        return error_response(
            404,
            f"no route '{alias}'; routes: {', '.join(sorted(self.gateway.routes))}",
            error_type="invalid_request_error",
            code="route_not_found",
            param="alias",
            headers=_NO_HEADERS,
        )

    async def arm(self, request: web.Request) -> web.Response:
        """The arm this replica gives a sticky key now (no upstream call): for drills."""
        if (denied := self._denied(request)) is not None:
            return denied
        alias = request.match_info["alias"]
        route = self.gateway.routes.get(alias)
        key = request.query.get("key")
        if route is None:
            return self._not_found(alias)
        if not key:
            return _bad("key", "'key' (a sticky key, in the query string) is required.")
        weight = self.gateway.route_state.weight(alias)
        assignment = assign(
            alias,
            key,
            weight=weight,
            has_candidate=route.candidate is not None,
            allow=route.allow,
        )
        return _json({"route": alias, "arm": assignment.arm.value, "weight": weight})

    async def set_weight(self, request: web.Request) -> web.Response:
        if (denied := self._denied(request)) is not None:
            return denied
        body = await _body(request)
        if isinstance(body, web.Response):
            return body
        weight = body.get("weight")
        if (
            isinstance(weight, bool)
            or not isinstance(weight, int | float)
            or not math.isfinite(weight)
            or not 0 <= weight <= 100
        ):
            return _bad("weight", "'weight' must be a number from 0 to 100 (percent).")
        return await self._change(request, body, float(weight), "set_weight")

    async def rollback(self, request: web.Request) -> web.Response:
        if (denied := self._denied(request)) is not None:
            return denied
        body = await _body(request, empty_ok=True)
        if isinstance(body, web.Response):
            return body
        return await self._change(request, body, 0.0, "rollback")

    async def audit(self, request: web.Request) -> web.Response:
        if (denied := self._denied(request)) is not None:
            return denied
        raw = request.query.get("limit", "100")
        try:
            limit = int(raw)
        except ValueError:
            limit = -1
        if not 1 <= limit <= MAX_AUDIT:
            return _bad("limit", f"'limit' must be an integer from 1 to {MAX_AUDIT}.")
        rows = await self.gateway.route_state.audit(limit)
        return _json({"audit": [_audit_view(row) for row in rows]})

    # -- helpers --------------------------------------------------------------------

    async def _change(
        self, request: web.Request, body: dict[str, Any], weight: float, action: str
    ) -> web.Response:
        actor = body.get("actor", DEFAULT_ACTOR)
        if not isinstance(actor, str) or not actor.strip() or len(actor) > MAX_ACTOR:
            return _bad(
                "actor", f"'actor' must be a non-empty string of at most {MAX_ACTOR} chars."
            )
        alias = request.match_info["alias"]
        route = self.gateway.routes.get(alias)
        if route is None:
            return self._not_found(alias)
        if route.candidate is None and weight > 0:
            return _bad("weight", f"route '{alias}' has no candidate; only weight 0 is allowed.")
        result = await self.gateway.route_state.set_weight(
            alias, weight, actor=actor.strip(), action=action
        )
        if result is None:  # pragma: no cover - every configured route has a state row
            return error_response(
                404, f"no route '{alias}'", error_type="invalid_request_error", headers=_NO_HEADERS
            )
        before, after = result
        return _json(
            {
                "route": self._view(after),
                "before": {"weight": before.weight, "version": before.version},
            }
        )

    def _view(self, row: RouteRow) -> dict[str, Any]:
        route = self.gateway.routes.get(row.alias)
        return {
            "alias": row.alias,
            "baseline": route.baseline.target.spec if route is not None else None,
            "candidate": (
                route.candidate.target.spec
                if route is not None and route.candidate is not None
                else None
            ),
            "weight": row.weight,
            "version": row.version,
            "updated_at": row.updated_at.isoformat(),
            "updated_by": row.updated_by,
        }


def _audit_view(row: AuditRow) -> dict[str, Any]:
    return {
        "id": row.id,
        "ts": row.ts.isoformat(),
        "actor": row.actor,
        "action": row.action,
        "alias": row.alias,
        "before": row.before,
        "after": row.after,
    }


async def _body(request: web.Request, *, empty_ok: bool = False) -> dict[str, Any] | web.Response:
    raw = await request.read()
    if not raw.strip() and empty_ok:
        return {}
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        return _bad("body", f"the body must be JSON ({exc}).")
    if not isinstance(body, dict):
        return _bad("body", "the body must be a JSON object.")
    return body


__all__ = ["AdminAPI"]
