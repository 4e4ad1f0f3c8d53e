"""Reads /sys as lscpu and joblib do, in the snapshot phase and after restore, on the
host's root and on a Debian image (a user namespace): tests/engine/test_sysfs.py."""

import os
import subprocess
import warnings

import coldsnap

debian = coldsnap.Image.debian_slim().pip_install("joblib==1.4.2")
app = coldsnap.App("sysfs-reader", image=coldsnap.Image.from_host())


def look() -> dict:
    import joblib

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        physical = joblib.cpu_count(only_physical_cores=True)
    lscpu = subprocess.run(["lscpu"], capture_output=True, text=True, timeout=60)
    return {"online": open("/sys/devices/system/cpu/online").read().strip(),
            "cpu_count": os.cpu_count(), "affinity": len(os.sched_getaffinity(0)),
            "lscpu_rc": lscpu.returncode, "lscpu_err": lscpu.stderr.strip(),
            "physical": physical, "warnings": [str(w.message) for w in caught],
            "net": sorted(os.listdir("/sys/class/net")),
            "read_only": bool(os.statvfs("/sys").f_flag & os.ST_RDONLY)}


@app.function()
def plain() -> dict:
    return look()


@app.function(image=debian)
def plain_debian() -> dict:
    return look()


class Reader:
    @coldsnap.enter(snap=True)
    def before(self):
        self.seen = look()

    @coldsnap.method()
    def both(self) -> list:
        return [self.seen, look()]


@app.cls(enable_memory_snapshot=True)
class Snapped(Reader):
    pass


@app.cls(enable_memory_snapshot=True, image=debian)
class SnappedDebian(Reader):
    pass
