"""A guestbook kept on a volume, each entry signed with a key from a secret.

The entries live in the volume `guestbook` on the server host: they outlive
containers, deploys and server restarts, and every container sees the others'
writes. The signing key comes from the secret `guestbook-key` as an environment
variable; it is read on every call, so after `coldsnap secret create ... --force`
the next cold boot (restored from the same memory snapshot) signs with the new key.

    coldsnap secret create guestbook-key SIGNING_KEY=change-me
    coldsnap run examples/guestbook.py --name Ada
    coldsnap volume ls guestbook
    coldsnap volume get guestbook /entries.jsonl -
"""

import hashlib
import hmac
import json
import os
import time

import coldsnap

app = coldsnap.App("guestbook", secrets=[coldsnap.Secret.from_name("guestbook-key")])
book = coldsnap.Volume.from_name("guestbook", create_if_missing=True)
ENTRIES = "/book/entries.jsonl"


def signature(entry: dict) -> str:
    key = os.environ["SIGNING_KEY"].encode()  # the secret's value of this boot
    message = json.dumps({k: entry[k] for k in ("name", "at")}, sort_keys=True).encode()
    return hmac.new(key, message, hashlib.sha256).hexdigest()


@app.cls(enable_memory_snapshot=True, volumes={"/book": book})
class Guestbook:
    @coldsnap.enter(snap=True)
    def open_book(self) -> None:
        # Runs once per version, before the memory snapshot: the volume is mounted
        # already, and this file stays open in every restored copy.
        self.log = open(ENTRIES, "a")  # noqa: SIM115

    @coldsnap.method()
    def sign(self, name: str) -> dict:
        entry = {"name": name, "at": round(time.time(), 3)}
        entry["mac"] = signature(entry)
        self.log.write(json.dumps(entry) + "\n")
        self.log.flush()
        book.commit()  # durable on the host's disk; other containers see it already
        return entry

    @coldsnap.method()
    def entries(self) -> list[dict]:
        book.reload()
        with open(ENTRIES) as handle:
            rows = [json.loads(line) for line in handle if line.strip()]
        return [{**row, "valid": hmac.compare_digest(row["mac"], signature(row))}
                for row in rows]


@app.local_entrypoint()
def main(name: str = "world") -> None:
    guestbook = Guestbook()
    print("signed:", guestbook.sign.remote(name))
    for row in guestbook.entries.remote():
        mark = "ok" if row["valid"] else "signed with another key"
        print(f"  {row['name']:<12} {time.ctime(row['at'])}  {mark}")
    entries = [entry.path for entry in book.listdir("/")]
    print("volume guestbook holds:", ", ".join(entries))
