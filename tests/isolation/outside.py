"""A host beyond the container host, for tests of the containers' network."""

from __future__ import annotations

import random
import subprocess
import sys
from pathlib import Path

OUTSIDE_SERVER = r"""
import socket, sys, threading
tcp = socket.create_server(("0.0.0.0", 8080))
held = socket.create_server(("0.0.0.0", 8081))
udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
udp.bind(("0.0.0.0", 9999))
def log_udp():
    while True:
        data, _ = udp.recvfrom(256)
        with open(sys.argv[1], "a") as f:
            f.write(data.decode() + "\n")
threading.Thread(target=log_udp, daemon=True).start()
def echo(conn):
    with conn:
        try:
            while data := conn.recv(256):
                conn.sendall(data)
        except OSError:
            pass
    with open(sys.argv[1], "a") as f:
        f.write("8081 closed\n")
def hold_and_echo():
    while True:
        threading.Thread(target=echo, args=(held.accept()[0],), daemon=True).start()
threading.Thread(target=hold_and_echo, daemon=True).start()
print("ready", flush=True)
while True:
    conn, _ = tcp.accept()
    conn.sendall(b"hi")
    conn.close()
"""


class Outside:
    """A host beyond the container host: its own network namespace behind a veth,
    with an ordinary address and a link-local one. TCP 8080 answers ``hi`` and hangs
    up; TCP 8081 keeps each connection open and echoes it (and logs ``8081 closed``
    to ``received`` when its client hangs up); UDP 9999 logs what it gets there."""

    def __init__(self, tmp: Path) -> None:
        n = random.randrange(256)
        self.ns, self.veth = f"csiso{n}", f"csisoh{n}"
        self.address, self.link_local = f"10.214.{n}.2", f"169.254.{n}.1"
        self.received = tmp / "udp.log"
        self.received.touch()
        for argv in (
            ["ip", "netns", "add", self.ns],
            ["ip", "link", "add", self.veth, "type", "veth", "peer", "name", "eth0",
             "netns", self.ns],
            ["ip", "addr", "add", f"10.214.{n}.1/30", "dev", self.veth],
            ["ip", "link", "set", self.veth, "up"],
            ["ip", "-n", self.ns, "addr", "add", f"{self.address}/30", "dev", "eth0"],
            ["ip", "-n", self.ns, "addr", "add", f"{self.link_local}/32", "dev", "eth0"],
            ["ip", "-n", self.ns, "link", "set", "eth0", "up"],
            ["ip", "-n", self.ns, "route", "add", "default", "via", f"10.214.{n}.1"],
            ["ip", "route", "add", f"{self.link_local}/32", "via", self.address],
        ):
            subprocess.run(argv, check=True, capture_output=True)
        self.server = subprocess.Popen(
            ["ip", "netns", "exec", self.ns, sys.executable, "-c", OUTSIDE_SERVER,
             str(self.received)], stdout=subprocess.PIPE)
        assert self.server.stdout is not None and self.server.stdout.readline() == b"ready\n"

    def close(self) -> None:
        self.server.kill()
        self.server.wait()
        if self.server.stdout is not None:
            self.server.stdout.close()
        subprocess.run(["ip", "route", "del", f"{self.link_local}/32"], capture_output=True)
        subprocess.run(["ip", "link", "del", self.veth], capture_output=True)
        subprocess.run(["ip", "netns", "del", self.ns], capture_output=True)
