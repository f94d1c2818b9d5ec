"""The reference: a minimal aiohttp pass-through.

Receives POST /v1/chat/completions, forwards the body to the upstream with one
shared ClientSession, returns the upstream's body (streams are relayed chunk by
chunk).

    python bench/gateway/passthrough.py --port 18090 --upstream http://127.0.0.1:18080
"""

from __future__ import annotations

import argparse

import aiohttp
from aiohttp import web


def make_app(upstream: str) -> web.Application:
    app = web.Application()
    url = upstream.rstrip("/") + "/v1/chat/completions"

    async def on_startup(app: web.Application) -> None:
        app["session"] = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=0), auto_decompress=False
        )

    async def on_cleanup(app: web.Application) -> None:
        await app["session"].close()

    async def handle(request: web.Request) -> web.StreamResponse:
        body = await request.read()
        headers = {"Content-Type": "application/json"}
        auth = request.headers.get("Authorization")
        if auth:
            headers["Authorization"] = auth
        async with app["session"].post(url, data=body, headers=headers) as up:
            ctype = up.headers.get("Content-Type", "application/json")
            if ctype.startswith("text/event-stream"):
                resp = web.StreamResponse(status=up.status, headers={"Content-Type": ctype})
                await resp.prepare(request)
                async for chunk in up.content.iter_any():
                    await resp.write(chunk)
                await resp.write_eof()
                return resp
            data = await up.read()
            return web.Response(status=up.status, body=data, content_type="application/json")

    app.router.add_post("/v1/chat/completions", handle)
    app.on_startup.append(on_startup)
    app.on_cleanup.append(on_cleanup)
    return app


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=18090)
    parser.add_argument("--upstream", default="http://127.0.0.1:18080")
    parser.add_argument("--uvloop", action="store_true", help="run on uvloop's event loop")
    args = parser.parse_args()
    loop = None
    if args.uvloop:
        import uvloop

        loop = uvloop.new_event_loop()
    web.run_app(
        make_app(args.upstream),
        loop=loop,
        host=args.host,
        port=args.port,
        access_log=None,
        print=lambda *a: print(f"listening http://{args.host}:{args.port}", flush=True),
    )


if __name__ == "__main__":
    main()
