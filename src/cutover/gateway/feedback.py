"""``POST /v1/feedback``: a score, or thumbs up/down, stored with the request.

Body: ``{"request_id": "req_...", "score": 0.5}`` or
``{"request_id": "req_...", "thumbs": "up" | "down"}`` (up is 1, down is -1; a
score below 0 counts as negative feedback). Answers 202 when stored, 404 for a
request id the store does not know, 400 for bad input and 503 when the gateway
has no store or it cannot be reached. A request still waiting in the log's
queue is flushed first, so feedback sent right after the answer is kept.
"""

from __future__ import annotations

import math
from typing import Any

import orjson
from aiohttp import web

from cutover.gateway._errors import bad_request, error_response
from cutover.gateway.log import Telemetry
from cutover.gateway.metrics import feedback_value

MAX_FEEDBACK_BYTES = 64 * 1024
THUMBS = {"up": 1.0, "down": -1.0}


def parse_feedback(body: Any) -> tuple[str, float] | tuple[None, tuple[str | None, str]]:
    """``(request_id, score)``, or ``(None, (param, message))`` for bad input."""
    if not isinstance(body, dict):
        return None, (None, "The request body must be a JSON object.")
    request_id = body.get("request_id")
    if not isinstance(request_id, str) or not request_id.strip():
        return None, ("request_id", "'request_id' must be a non-empty string.")
    has_score, has_thumbs = body.get("score") is not None, body.get("thumbs") is not None
    if has_score == has_thumbs:
        return None, (None, "Send exactly one of 'score' (a number) or 'thumbs' ('up' or 'down').")
    if has_thumbs:
        thumbs = body["thumbs"]
        if thumbs not in THUMBS:
            return None, ("thumbs", "'thumbs' must be 'up' or 'down'.")
        return request_id, THUMBS[thumbs]
    score = body["score"]
    if isinstance(score, bool) or not isinstance(score, int | float) or not math.isfinite(score):
        return None, ("score", "'score' must be a finite number.")
    return request_id, float(score)


async def handle_feedback(request: web.Request, telemetry: Telemetry) -> web.Response:
    """The endpoint, once the client key is checked."""
    headers: dict[str, str] = {}
    if request.content_length is not None and request.content_length > MAX_FEEDBACK_BYTES:
        return bad_request("The feedback body is too large.", None, headers)
    try:
        body = orjson.loads(await request.read())
    except orjson.JSONDecodeError as exc:
        return bad_request(
            f"We could not parse the JSON body of your request ({exc}).", None, headers
        )
    request_id, parsed = parse_feedback(body)
    if request_id is None:
        assert isinstance(parsed, tuple)
        return bad_request(parsed[1], parsed[0], headers)
    assert isinstance(parsed, float)
    log = telemetry.log
    if not log.enabled:
        return error_response(
            503,
            "This gateway keeps no request log (no 'store' in its config), so it cannot "
            "store feedback.",
            error_type="service_unavailable",
            headers=headers,
        )
    if log.is_pending(request_id):
        await log.flush()

    assert log.access is not None
    try:
        arm = await log.access.record_feedback(request_id, parsed)
    except Exception as exc:  # noqa: BLE001 - the store is down: say so, keep serving
        return error_response(
            503,
            f"The request log cannot be reached right now ({type(exc).__name__}); try again later.",
            error_type="service_unavailable",
            headers=headers,
        )
    if arm is None:
        return error_response(
            404,
            f"No request with id '{request_id}' is in the request log.",
            error_type="invalid_request_error",
            code="request_not_found",
            param="request_id",
            headers=headers,
        )
    telemetry.metrics.feedback.labels(arm, feedback_value(parsed)).inc()
    return web.Response(
        status=202,
        body=orjson.dumps({"request_id": request_id, "score": parsed, "status": "accepted"}),
        content_type="application/json",
    )


__all__ = ["THUMBS", "handle_feedback", "parse_feedback"]
