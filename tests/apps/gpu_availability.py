"""The reference's GPUAvailability example (torch is imported inside the hooks)."""

import coldsnap

app = coldsnap.App("test-gpu-availability")


@app.cls(enable_memory_snapshot=True, gpu="any")
class GPUAvailability:
    @coldsnap.enter(snap=True)
    def no_gpus_available_during_snapshots(self):
        import torch

        self.during_snapshot = torch.cuda.is_available()
        print(f"GPUs available: {self.during_snapshot}", flush=True)

    @coldsnap.enter(snap=False)
    def gpus_available_during_restore(self):
        import torch

        self.after_restore = torch.cuda.is_available()
        print(f"GPUs available: {self.after_restore}", flush=True)

    @coldsnap.method()
    def report(self) -> dict:
        import torch

        result = {"during_snapshot": self.during_snapshot, "after_restore": self.after_restore}
        if self.after_restore:
            result["tensor_device"] = str(torch.ones(2).cuda().device)
        return result
