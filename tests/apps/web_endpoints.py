"""Web endpoints of every kind, for tests/web (from_host: FastAPI comes from the venv)."""

import asyncio
import os
import socket
import subprocess
import sys
import threading
import time

import coldsnap

app = coldsnap.App("webapp", image=coldsnap.Image.from_host())


@app.function(enable_memory_snapshot=True, scaledown_window=2)
@coldsnap.fastapi_endpoint(method="POST")
def echo(item: dict) -> dict:
    return {"got": item, "container": os.environ.get("COLDSNAP_CONTAINER_ID")}


@app.function(scaledown_window=2)
@coldsnap.fastapi_endpoint(requires_proxy_auth=True, label="secret-hello")
def hello(name: str = "world") -> str:
    return f"hello {name}"


@app.function(timeout=2, startup_timeout=120, scaledown_window=2)
@coldsnap.fastapi_endpoint()
def slow(seconds: float = 0.0, crash: bool = False) -> str:
    if crash:
        print("slow: crashing on purpose", flush=True)
        os._exit(3)
    time.sleep(seconds)
    return "done"


@app.function(scaledown_window=2)
@coldsnap.asgi_app(label="streamer")
def streamer():
    from fastapi import FastAPI, Request, WebSocket, WebSocketDisconnect
    from fastapi.responses import StreamingResponse

    web = FastAPI()

    @web.get("/stream")
    async def stream(n: int = 3, delay: float = 1.0):
        async def events():
            for i in range(n):
                yield f"data: {i} {time.time()}\n\n"
                await asyncio.sleep(delay)
        return StreamingResponse(events(), media_type="text/event-stream")

    @web.post("/count")
    async def count(request: Request):
        total = 0
        async for chunk in request.stream():
            total += len(chunk)
        return {"bytes": total}

    @web.websocket("/ws")
    async def ws(socket: WebSocket):
        await socket.accept()
        try:
            while True:
                await socket.send_text("echo: " + await socket.receive_text())
        except WebSocketDisconnect:
            pass

    return web


@app.function(scaledown_window=2)
@coldsnap.web_server(8767, startup_timeout=20)
def own_uvicorn():
    """A web_server that is a WebSocket server of its own (uvicorn, started here)."""
    import uvicorn
    from fastapi import FastAPI, WebSocket, WebSocketDisconnect

    web = FastAPI()

    @web.websocket("/ws")
    async def ws(socket: WebSocket):
        await socket.accept()
        try:
            while True:
                await socket.send_text("own: " + await socket.receive_text())
        except WebSocketDisconnect:
            pass

    @web.get("/")
    def hello():
        print("own_uvicorn served a request")  # for the app's log
        return "hello from my own server"

    server = uvicorn.Server(uvicorn.Config(web, host="0.0.0.0", port=8767, log_level="warning"))
    threading.Thread(target=server.run, daemon=True).start()


@app.function(scaledown_window=2)
@coldsnap.wsgi_app()
def classic():
    def application(environ, start_response):
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [f"wsgi {environ['REQUEST_METHOD']} {environ['PATH_INFO']}".encode()]
    return application


def _serve_forever(listener: socket.socket, started: float) -> None:
    """A tiny HTTP server: answers with the time it started listening."""
    while True:
        conn, _ = listener.accept()
        with conn:
            conn.recv(65536)
            body = f"listening since {started}".encode()
            conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: " + str(len(body)).encode()
                         + b"\r\nConnection: close\r\n\r\n" + body)


@app.cls(enable_memory_snapshot=True, scaledown_window=2)
class Server:
    @coldsnap.enter(snap=True)
    def start(self):
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("0.0.0.0", 8765))
        listener.listen(64)
        self.started = time.time()
        threading.Thread(target=_serve_forever, args=(listener, self.started),
                         daemon=True).start()

    @coldsnap.web_server(8765, startup_timeout=10)
    def serve(self):
        pass


@app.function(scaledown_window=2)
@coldsnap.web_server(8766, startup_timeout=10)
def subprocess_server():
    subprocess.Popen([sys.executable, "-m", "http.server", "8766", "--bind", "0.0.0.0",
                      "--directory", os.path.dirname(__file__)])


@app.function()
def probe_gateway(port: int) -> dict:
    """What a container reaches of the host's gateway: its loopback (its own), the host's
    side of its network, and the server's token API through its control channel."""
    from coldsnap.container_client import ContainerClient
    from coldsnap.wire import ops

    with open("/proc/net/route") as routes:
        for line in routes.readlines()[1:]:
            fields = line.split()
            if fields[1] == "00000000":  # the default route: the host's side
                host = socket.inet_ntoa(int(fields[2], 16).to_bytes(4, "little"))
    results = {}
    for address in ("127.0.0.1", host):
        try:
            with socket.create_connection((address, port), timeout=2):
                results[address] = "connected"
        except OSError as exc:
            results[address] = type(exc).__name__
    try:
        ContainerClient.default().request(ops.TOKEN_CREATE)
        results["token_create"] = "allowed"
    except Exception as exc:
        results["token_create"] = str(exc)
    return results


@app.function()
def square(x: int) -> int:
    return x * x


@app.function(scaledown_window=2)
@coldsnap.fastapi_endpoint()
def calls_others(x: int = 3) -> dict:
    """A web endpoint that calls other functions, as Modal apps do."""
    return {"remote": square.remote(x), "map": list(square.map([1, 2]))}
