"""GPU memory snapshots: weights go to the GPU in enter(snap=True), and a
restored copy finds them there. Without a GPU the hook only records what the
snapshot phase saw (nothing hidden), and the snapshot is a CPU one."""

import os

import coldsnap

# from_host(): the GPU host's own CUDA build of torch (an image would need one installed).
app = coldsnap.App("test-gpu-snapshot", image=coldsnap.Image.from_host())
SNAPSHOT_PHASE_VARS = ("CUDA_VISIBLE_DEVICES", "PYTORCH_NVML_BASED_CUDA_CHECK",
                       "COLDSNAP_GPU_SNAPSHOT")


@app.cls(enable_memory_snapshot=True, gpu="any",
         experimental_options={"enable_gpu_snapshot": True})
class GpuWeights:
    @coldsnap.enter(snap=True)
    def load(self):
        self.snapshot_phase_env = {name: os.environ.get(name) for name in SNAPSHOT_PHASE_VARS}
        self.device_at_snapshot = None
        if os.path.exists("/dev/nvidiactl"):
            import torch

            generator = torch.Generator().manual_seed(0)
            self.weights = torch.randn(2048, 2048, generator=generator).cuda()
            self.device_at_snapshot = str(self.weights.device)
            self.sum_at_snapshot = float(self.weights.double().sum())

    @coldsnap.method()
    def report(self) -> dict:
        result = {"env": self.snapshot_phase_env, "device_at_snapshot": self.device_at_snapshot}
        if self.device_at_snapshot is not None:
            result["device_now"] = str(self.weights.device)
            result["sum_now"] = float(self.weights.double().sum())
            result["sum_at_snapshot"] = self.sum_at_snapshot
        return result
