"""A minimal raw-asyncio HTTP/1.1 server answering POST /v1/chat/completions instantly.

Non-stream: a fixed chat.completion JSON (keep-alive, Content-Length).
Stream (body contains "stream": true): chunked SSE; the first chunk is sent at
once, the rest after --stream-gap-ms, ending with data: [DONE].

    python bench/gateway/upstream.py --port 18080
"""

from __future__ import annotations

import argparse
import asyncio
import json

COMPLETION = json.dumps(
    {
        "id": "chatcmpl-bench",
        "object": "chat.completion",
        "created": 1700000000,
        "model": "gpt-4o-mini",
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": "Hello! How can I help you today?"},
                "finish_reason": "stop",
            }
        ],
        "usage": {"prompt_tokens": 12, "completion_tokens": 9, "total_tokens": 21},
    },
    separators=(",", ":"),
).encode()

RESPONSE = (
    b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: "
    + str(len(COMPLETION)).encode()
    + b"\r\n\r\n"
    + COMPLETION
)
STREAM_HEAD = (
    b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n"
    b"Cache-Control: no-cache\r\nTransfer-Encoding: chunked\r\n\r\n"
)


def _chunk(delta: dict, finish: str | None = None, usage: dict | None = None) -> bytes:
    obj = {
        "id": "chatcmpl-bench",
        "object": "chat.completion.chunk",
        "created": 1700000000,
        "model": "gpt-4o-mini",
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish}] if usage is None else [],
    }
    if usage is not None:
        obj["usage"] = usage
    data = b"data: " + json.dumps(obj, separators=(",", ":")).encode() + b"\n\n"
    return b"%x\r\n%s\r\n" % (len(data), data)


FIRST = _chunk({"role": "assistant", "content": "Hello"})
REST = (
    b"".join(_chunk({"content": w}) for w in ["!", " How", " can", " I", " help?"])
    + _chunk({}, finish="stop")
    + _chunk({}, usage={"prompt_tokens": 12, "completion_tokens": 6, "total_tokens": 18})
    + b"e\r\ndata: [DONE]\n\n\r\n"
    + b"0\r\n\r\n"
)


class Upstream(asyncio.Protocol):
    gap = 0.005

    def connection_made(self, transport):  # type: ignore[override]
        self.transport = transport
        self.buf = b""

    def data_received(self, data: bytes) -> None:
        self.buf += data
        while True:
            end = self.buf.find(b"\r\n\r\n")
            if end < 0:
                return
            head = self.buf[:end].lower()
            length = 0
            i = head.find(b"content-length:")
            if i >= 0:
                j = head.find(b"\r\n", i)
                length = int(head[i + 15 : j if j >= 0 else len(head)])
            total = end + 4 + length
            if len(self.buf) < total:
                return
            body = self.buf[end + 4 : total]
            self.buf = self.buf[total:]
            if b'"stream":true' in body.replace(b" ", b""):
                self.transport.write(STREAM_HEAD + FIRST)
                asyncio.get_running_loop().call_later(self.gap, self._finish)
            else:
                self.transport.write(RESPONSE)

    def _finish(self) -> None:
        if not self.transport.is_closing():
            self.transport.write(REST)


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=18080)
    parser.add_argument("--stream-gap-ms", type=float, default=5.0)
    args = parser.parse_args()
    Upstream.gap = args.stream_gap_ms / 1000
    loop = asyncio.get_running_loop()
    server = await loop.create_server(Upstream, args.host, args.port, backlog=1024)
    print(f"listening http://{args.host}:{args.port}", flush=True)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    asyncio.run(main())
