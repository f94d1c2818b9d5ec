"""OpenAI-shaped error answers, and how an upstream's error becomes one."""

from __future__ import annotations

from collections.abc import Mapping

import orjson
from aiohttp import web

from cutover.providers._http import excerpt

# Upstream answers passed through with their own status (the client can act on them).
_PASS_THROUGH = frozenset({400, 404, 408, 409, 413, 422, 429})
_RETRY_HEADERS = ("retry-after", "retry-after-ms")


def error_body(
    message: str, *, error_type: str, code: str | None = None, param: str | None = None
) -> bytes:
    """``{"error": {message, type, param, code}}`` as OpenAI sends it."""
    return orjson.dumps(
        {"error": {"message": message, "type": error_type, "param": param, "code": code}}
    )


def error_response(
    status: int,
    message: str,
    *,
    error_type: str,
    headers: Mapping[str, str],
    code: str | None = None,
    param: str | None = None,
) -> web.Response:
    """An OpenAI-shaped JSON error answer."""
    return web.Response(
        status=status,
        body=error_body(message, error_type=error_type, code=code, param=param),
        content_type="application/json",
        headers=headers,
    )


def relay_status(
    status: int, upstream_headers: Mapping[str, str], headers: dict[str, str]
) -> tuple[int, bool, dict[str, str]]:
    """How to answer an upstream's non-2xx, in either dialect: the status, whether it rejected
    the gateway's provider key, and the answer's headers (``headers`` plus the upstream's
    Retry-After headers; ``headers`` itself is left as it is, for a fallback to reuse).

    429, 5xx and request errors (400/404/422...) keep their status; 401/403 (the gateway's key,
    not the client's) and anything else become 502.
    """
    retry = {n: v for n in _RETRY_HEADERS if (v := upstream_headers.get(n)) is not None}
    answer_headers = {**headers, **retry} if retry else headers
    if status in (401, 403):
        return 502, True, answer_headers
    return (status if status in _PASS_THROUGH or status >= 500 else 502), False, answer_headers


def key_rejected_message(label: str, status: int) -> str:
    return f"upstream {label} rejected the gateway's provider key (HTTP {status})"


def upstream_error_response(
    status: int,
    body: bytes,
    upstream_headers: Mapping[str, str],
    *,
    label: str,
    headers: dict[str, str],
) -> web.Response:
    """The answer for a non-2xx from the upstream.

    429, 5xx and request errors (400/404/422...) keep their status; an upstream
    401/403 means the gateway's provider key is wrong, not the client's, so
    it becomes a 502. An OpenAI-shaped body is kept as is; anything else is
    wrapped in one quoting the upstream. Retry-After headers are kept.
    """
    out_status, key_rejected, headers = relay_status(status, upstream_headers, headers)
    if key_rejected:
        return error_response(
            out_status,
            key_rejected_message(label, status),
            error_type="upstream_auth_error",
            headers=headers,
        )
    if _is_openai_error(body):
        return web.Response(
            status=out_status, body=body, content_type="application/json", headers=headers
        )
    error_type = "server_error" if out_status >= 500 else "invalid_request_error"
    return error_response(
        out_status,
        f"upstream {label} answered HTTP {status}: {excerpt(body)}",
        error_type=error_type,
        headers=headers,
    )


def unauthorized(headers: Mapping[str, str]) -> web.Response:
    return error_response(
        401,
        "Incorrect or missing client key: send 'Authorization: Bearer <key>' "
        "with a key from the gateway's client_keys.",
        error_type="invalid_request_error",
        code="invalid_api_key",
        headers=headers,
    )


def bad_request(message: str, param: str | None, headers: Mapping[str, str]) -> web.Response:
    return error_response(
        400, message, error_type="invalid_request_error", param=param, headers=headers
    )


def too_large(limit: int, headers: Mapping[str, str]) -> web.Response:
    return error_response(
        413,
        f"The request body is larger than the gateway's limit of {limit} bytes.",
        error_type="invalid_request_error",
        code="request_too_large",
        headers=headers,
    )


def _is_openai_error(body: bytes) -> bool:
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError:
        return False
    return (
        isinstance(data, dict)
        and isinstance(data.get("error"), dict)
        and isinstance(data["error"].get("message"), str)
    )


def stream_error_frame(message: str, *, error_type: str) -> bytes:
    """An SSE frame carrying an error, for a stream that broke after it started."""
    return b"data: " + error_body(message, error_type=error_type) + b"\n\n"


__all__ = [
    "bad_request",
    "error_body",
    "error_response",
    "stream_error_frame",
    "too_large",
    "unauthorized",
    "upstream_error_response",
]
