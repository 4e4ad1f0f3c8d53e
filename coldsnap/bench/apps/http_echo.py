"""Benchmark workload `http-warm`: the gateway's own cost, on a bare ASGI app (no
framework in the way) that answers with the address its server listens on, so
the benchmark can also reach it directly."""

import json

import coldsnap

app = coldsnap.App("bench-http-warm", image=coldsnap.Image.from_host())


@app.function(enable_memory_snapshot=True)
@coldsnap.concurrent(max_inputs=32)
@coldsnap.asgi_app(label="echo")
def echo():
    async def asgi(scope, receive, send):
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                kind = message["type"].rsplit(".", 1)[-1]
                await send({"type": f"lifespan.{kind}.complete"})
                if kind == "shutdown":
                    return
        host, port = scope["server"]
        body = json.dumps({"server": f"{host}:{port}"}).encode()
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-type", b"application/json"),
                                (b"content-length", str(len(body)).encode())]})
        await send({"type": "http.response.body", "body": body})

    return asgi
