"""An instant OpenAI-compatible server, to measure the load generator itself: it answers /v1/completions at
once with `max_tokens` streamed chunks of one token each (every `itl_ms` apart, or back to back), in vLLM's
format (token ids per chunk, usage last), and keeps its own times for every request (received, first and
last chunk written) on the host's monotonic clock, served at /timings, and the request bodies it got, at
/bodies. Run as its own process:

    python -m bench.serving.stub --port 8199 [--itl-ms 5] [--reuse-port]

With `--reuse-port` several such processes share one port (the kernel spreads connections over them), so
that one stub process is not what limits the client; each then keeps only its own times.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time

from bench.stacks.base import ServeRequest, ServerKind

_DONE = b"data: [DONE]\n\n"
# One token per chunk, in vLLM's format, made once.
_CHUNKS = [
    b"data: " + json.dumps({"choices": [{"index": 0, "text": f"<t{i}>", "token_ids": [i]}]}).encode() + b"\n\n"
    for i in range(4096)
]


def body(model: str, r: ServeRequest) -> dict:
    return {"model": model, "prompt": r.prompt, "max_tokens": r.output_len, "stream": True}


STUB = ServerKind(
    name="stub",
    command=lambda model_dir, port, settings: [],
    body=body,
    chunk_tokens=lambda choice: len(choice.get("token_ids") or []),
)


def app(itl_ms: float):
    from aiohttp import web

    timings: list[list[float]] = []
    bodies: list[dict] = []

    async def completions(request):
        received = time.perf_counter()
        data = await request.json()
        bodies.append(data)
        n = int(data.get("max_tokens") or 16)
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        usage = {"choices": [], "usage": {"prompt_tokens": None, "completion_tokens": n}}
        tail = b"data: " + json.dumps(usage).encode() + b"\n\n" + _DONE
        if not itl_ms:  # back to back: one write, so that the stub costs as little as it can
            await response.write(b"".join(_CHUNKS[i % len(_CHUNKS)] for i in range(n)) + tail)
            first = last = time.perf_counter()
        else:
            first = None
            for i in range(n):
                if i:
                    await asyncio.sleep(itl_ms / 1000)
                await response.write(_CHUNKS[i % len(_CHUNKS)])
                first = first or time.perf_counter()
            last = time.perf_counter()
            await response.write(tail)
        await response.write_eof()
        timings.append([received, first or last, last])
        return response

    async def health(request):
        return web.Response(text="ok")

    async def read_timings(request):
        out = list(timings)
        timings.clear()
        return web.json_response(out)

    async def read_bodies(request):
        out = list(bodies)
        bodies.clear()
        return web.json_response(out)

    application = web.Application(client_max_size=2**24)
    application.router.add_post("/v1/completions", completions)
    application.router.add_get("/health", health)
    application.router.add_get("/timings", read_timings)
    application.router.add_get("/bodies", read_bodies)
    return application


def main(argv=None) -> None:
    from aiohttp import web

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--itl-ms", type=float, default=0.0)
    p.add_argument("--reuse-port", action="store_true")
    a = p.parse_args(argv)
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    web.run_app(
        app(a.itl_ms), host="127.0.0.1", port=a.port, print=None, access_log=None, reuse_port=a.reuse_port or None
    )


if __name__ == "__main__":
    main()
