"""A server of your own behind the gateway, started before the memory snapshot.

As in Modal's snapshot examples (an inference server in a subprocess), the
`enter(snap=True)` hook starts the server, waits until its health check answers
on 127.0.0.1 and warms it up; then the container is snapshotted with the server
running. A restored copy serves at once: the server process, its listening
socket and its warm state come back from the snapshot.

    coldsnap deploy examples/web_server.py
    curl http://web-server--server-serve.localhost:8000/health
    coldsnap run examples/web_server.py
"""

import json
import subprocess
import sys
import time
import urllib.request

import coldsnap

app = coldsnap.App("web-server", image=coldsnap.Image.from_host())

PORT = 8080
# The "model server": an HTTP server that takes a moment to load, then answers.
SERVER = """
import http.server, json, os, time
time.sleep(1.0)  # loading a model, say
STARTED = time.time()

class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        body = json.dumps({"pid": os.getpid(), "up_since": STARTED}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass

http.server.ThreadingHTTPServer(("0.0.0.0", %d), Handler).serve_forever()
""" % PORT


def wait_healthy(url: str, timeout_s: float = 30.0) -> None:
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            with urllib.request.urlopen(url, timeout=1) as response:
                if response.status == 200:
                    return
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


@app.cls(enable_memory_snapshot=True, scaledown_window=10)
class Server:
    @coldsnap.enter(snap=True)
    def start(self) -> None:
        self.process = subprocess.Popen([sys.executable, "-c", SERVER])
        wait_healthy(f"http://127.0.0.1:{PORT}/health")  # loopback is up in this phase

    @coldsnap.web_server(PORT, startup_timeout=30)
    def serve(self) -> None:
        pass  # the server already runs: started above, before the snapshot


@app.local_entrypoint()
def main() -> None:
    url = Server().serve.get_web_url()
    with urllib.request.urlopen(f"{url}/health", timeout=300) as response:
        print(f"GET {url}/health -> {json.load(response)}")
