"""Shaped like the reference's Embedder, with a tiny fake model (no torch needed)."""

import hashlib
import os
import random

import coldsnap

image = coldsnap.Image.from_host()
app = coldsnap.App("test-embedder-like", image=image)

with image.imports():
    import json  # stands in for `from sentence_transformers import SentenceTransformer`


class FakeModel:
    """Deterministic 'embeddings': a hash of each sentence, normalised."""

    def __init__(self, dim: int) -> None:
        self.dim = dim
        self.device = "cpu"

    def encode(self, sentences: list[str]) -> list[list[float]]:
        vectors = []
        for sentence in sentences:
            digest = hashlib.sha256(sentence.encode()).digest()
            raw = [b - 127.5 for b in digest[: self.dim]]
            norm = sum(x * x for x in raw) ** 0.5
            vectors.append([x / norm for x in raw])
        return vectors


class Base:
    @coldsnap.enter(snap=True)
    def base_load(self):
        self.events = ["base_load"]
        print("base_load: before snapshot", flush=True)


@app.cls(enable_memory_snapshot=True)
class Embedder(Base):
    @coldsnap.build()
    def build(self):
        os.makedirs("/tmp/model.fake", exist_ok=True)

    @coldsnap.enter(snap=True)
    def load(self):
        self.model = FakeModel(dim=8)
        self.events.append("load")
        self.snapshot_phase_random = random.random()
        self.snapshot_phase_env = os.environ.get("EMBEDDER_STAGE")
        print(f"load: model ready on {self.model.device}", flush=True)

    @coldsnap.enter(snap=False)
    def setup(self):
        self.events.append("setup")
        self.model.device = os.environ.get("EMBEDDER_DEVICE", "cpu")
        print(f"setup: model on {self.model.device}", flush=True)

    @coldsnap.method()
    def run(self, sentences: list[str]) -> list[list[float]]:
        print(f"run: encoding {len(sentences)} sentences", flush=True)
        return self.model.encode(sentences)

    @coldsnap.method()
    def state(self) -> dict:
        return {
            "events": list(self.events),
            "device": self.model.device,
            "stage_env": os.environ.get("EMBEDDER_STAGE"),
            "snapshot_phase_env": self.snapshot_phase_env,
            "container_id": os.environ.get("COLDSNAP_CONTAINER_ID"),
            "random_after_restore": random.random(),
            "json_ok": json.dumps([1]) == "[1]",
        }


@app.local_entrypoint()
def main():
    print(Embedder().run.remote(["what is the meaning of life?"]))
