"""A GPU function on a root of the image's own (debian_slim): the image has no NVIDIA
driver, the engine lays the host's driver libraries in (engine/host_driver.py). No
torch in the image: CUDA's driver API through ctypes, which is what torch loads too.
The snap=True hook puts 1 MiB on the GPU; a restored copy reads it back."""

import ctypes

import coldsnap

app = coldsnap.App("test-gpu-image-root", image=coldsnap.Image.debian_slim())
PATTERN = bytes(range(256)) * 4096


class Cuda:
    def __init__(self) -> None:
        self.lib = ctypes.CDLL("libcuda.so.1")
        self.lib.cuMemcpyHtoD_v2.argtypes = [ctypes.c_uint64, ctypes.c_void_p, ctypes.c_size_t]
        self.lib.cuMemcpyDtoH_v2.argtypes = [ctypes.c_void_p, ctypes.c_uint64, ctypes.c_size_t]

    def __call__(self, name: str, *args) -> None:
        result = getattr(self.lib, name)(*args)
        if result != 0:
            raise RuntimeError(f"{name} returned CUDA error {result}")


@app.cls(gpu="any", enable_memory_snapshot=True,
         experimental_options={"enable_gpu_snapshot": True})
class DriverApi:
    @coldsnap.enter(snap=True)
    def load(self):
        self.cuda = cuda = Cuda()
        cuda("cuInit", 0)
        self.device = ctypes.c_int()
        cuda("cuDeviceGet", ctypes.byref(self.device), 0)
        self.context = ctypes.c_void_p()
        cuda("cuDevicePrimaryCtxRetain", ctypes.byref(self.context), self.device)
        cuda("cuCtxSetCurrent", self.context)
        self.pointer = ctypes.c_uint64()
        cuda("cuMemAlloc_v2", ctypes.byref(self.pointer), ctypes.c_size_t(len(PATTERN)))
        cuda("cuMemcpyHtoD_v2", self.pointer.value, PATTERN, len(PATTERN))

    @coldsnap.method()
    def report(self) -> dict:
        self.cuda("cuCtxSetCurrent", self.context)
        back = ctypes.create_string_buffer(len(PATTERN))
        self.cuda("cuMemcpyDtoH_v2", back, self.pointer.value, len(PATTERN))
        name = ctypes.create_string_buffer(100)
        self.cuda("cuDeviceGetName", name, 100, self.device)
        with open("/proc/self/maps") as maps:
            libcuda = sorted({line.split()[-1] for line in maps if "libcuda.so" in line})
        return {"device": name.value.decode(), "same": back.raw == PATTERN, "libcuda": libcuda}
