"""Functions that share a volume: plain writers/readers, and a snapshotted class that
holds a volume file open (and mapped) across its memory snapshot."""

import mmap
import os

import coldsnap

IMAGE = os.environ.get("VOLUME_TEST_IMAGE", "debian_slim")
app = coldsnap.App("test-volumes",
                   image=coldsnap.Image.from_host() if IMAGE == "host" else None)
vol = coldsnap.Volume.from_name("test-shared", create_if_missing=True)


@app.function(volumes={"/data": vol})
def write(name: str, text: str) -> str:
    with open(f"/data/{name}", "w") as handle:
        handle.write(text)
    vol.commit()
    return os.environ["COLDSNAP_CONTAINER_ID"]


@app.function(volumes={"/data": vol})
def read(name: str) -> tuple[str, str]:
    vol.reload()
    with open(f"/data/{name}") as handle:
        return handle.read(), os.environ["COLDSNAP_CONTAINER_ID"]


@app.cls(enable_memory_snapshot=True, volumes={"/data": vol})
class Holder:
    @coldsnap.enter(snap=True)
    def load(self) -> None:
        # held.txt is put there by the test (`coldsnap volume put`) before the deploy.
        self.held = open("/data/held.txt", "rb")  # noqa: SIM115 - open across the snapshot
        self.mapped = mmap.mmap(self.held.fileno(), 0, access=mmap.ACCESS_READ)
        self.first = self.held.read()

    @coldsnap.method()
    def held_file(self) -> tuple[bytes, bytes, bytes]:
        self.held.seek(0)
        return self.first, self.held.read(), bytes(self.mapped[:])

    @coldsnap.method()
    def read_now(self, name: str) -> str:
        with open(f"/data/{name}") as handle:
            return handle.read()


@app.function(volumes={"/data": vol})
def listed() -> list[str]:
    """The volume's top level, asked of the server from inside a container."""
    return sorted(entry.path for entry in vol.listdir("/"))


@app.function(volumes={"/data": vol})
def plant_traps() -> None:
    """What a hostile container could leave for the server's file operations."""
    os.makedirs("/data/traps", exist_ok=True)
    for link, target in (("escape", "/etc"), ("hostname", "/etc/hostname")):
        if not os.path.lexists(f"/data/traps/{link}"):
            os.symlink(target, f"/data/traps/{link}")
    if not os.path.exists("/data/traps/fifo"):
        os.mkfifo("/data/traps/fifo")
