"""Recorded answers of tools this machine does not have: NVML, sysctl and vm_stat.

The NVML stand-in mirrors pynvml's API and structures (nvmlDeviceGetMemoryInfo with the v2
version argument, NVMLError subclasses). The H200 readings were recorded by
`bench/nvml_live.py --record` on an H200 (driver 580.159.04, nvidia-ml-py's pynvml) on
2026-12-04: idle, and while another process held 96 GiB. The H100 SXM (80 GB), RTX 4090 and
Jetson-style unified-memory board ("Not Supported") values were written down by hand.
"""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

GIB = 1024**3


class NVMLError(Exception):
    pass


class NVMLError_NotSupported(NVMLError):  # pynvml's own name
    pass


class NVMLError_FunctionNotFound(NVMLError):  # pynvml's own name
    pass


class NVMLError_GpuIsLost(NVMLError):  # pynvml's own name: the GPU fell off the bus
    pass


class RecordedNvml:
    """pynvml as it answers on a given machine."""

    NVMLError = NVMLError
    NVMLError_NotSupported = NVMLError_NotSupported
    NVMLError_FunctionNotFound = NVMLError_FunctionNotFound
    nvmlMemory_v2 = 0x02000028

    def __init__(self, devices: list[dict[str, Any]], *, init_fails: bool = False) -> None:
        self.devices = devices
        self.init_fails = init_fails
        self.calls: list[str] = []

    def nvmlInit(self) -> None:
        if self.init_fails:
            raise NVMLError("NVML Shared Library Not Found")

    def nvmlDeviceGetCount(self) -> int:
        return len(self.devices)

    def nvmlDeviceGetHandleByIndex(self, index: int) -> dict[str, Any]:
        return self.devices[index]

    def nvmlDeviceGetName(self, handle: dict[str, Any]) -> bytes:
        return handle["name"].encode()

    def nvmlDeviceGetMemoryInfo(self, handle: dict[str, Any], version: int | None = None) -> Any:
        self.calls.append(f"memory v{2 if version else 1}")
        if handle.get("lost"):
            raise NVMLError_GpuIsLost("GPU is lost")
        if handle.get("not_supported"):
            raise NVMLError_NotSupported("Not Supported")
        mem = handle["memory"]
        if version is not None:
            if not handle.get("v2", True):
                raise NVMLError_FunctionNotFound("Function Not Found")
            return SimpleNamespace(
                version=version,
                total=mem["total"],
                reserved=mem["reserved"],
                free=mem["free"],
                used=mem["used"],
            )
        # v1 has no reserved field: it counts reserved memory as used (the H200 answered
        # v1 used = v2 used + reserved, with the same free).
        return SimpleNamespace(
            total=mem["total"], free=mem["free"], used=mem["used"] + mem["reserved"]
        )

    def nvmlDeviceGetComputeRunningProcesses(self, handle: dict[str, Any]) -> list[Any]:
        return [SimpleNamespace(pid=p, usedGpuMemory=used) for p, used in handle.get("procs", [])]


H100 = {
    "name": "NVIDIA H100 80GB HBM3",
    "memory": {
        "total": 85520809984,
        "reserved": 570425344,
        "free": 63216861184,
        "used": 21733523456,
    },
    "procs": [(4121, 21474836480)],
}
H200_IDLE = {
    "name": "NVIDIA H200",
    "memory": {"total": 150754820096, "reserved": 644939776, "free": 150109880320, "used": 0},
}
# The same GPU while pid 523 held 96 GiB (torch.empty + fill_): its CUDA context adds ~600 MiB.
H200_HELD = {
    "name": "NVIDIA H200",
    "memory": {
        "total": 150754820096,
        "reserved": 644939776,
        "free": 46381793280,
        "used": 103728087040,
    },
    "procs": [(523, 103718846464)],
}
# nvidia-smi --query-gpu=memory.total,memory.reserved,memory.free, same GPU, idle (MiB).
H200_SMI_IDLE = {"total": 143771, "reserved": 616, "free": 143156}
RTX_4090_V1_ONLY = {
    "name": "NVIDIA GeForce RTX 4090",
    "memory": {"total": 25757220864, "reserved": 0, "free": 24990580736, "used": 766640128},
    "v2": False,
}
UNIFIED_BOARD = {"name": "Orin (nvgpu)", "not_supported": True}
LOST = {"name": "NVIDIA A100-SXM4-40GB", "lost": True}  # Xid 79: NVML still lists it

# `sysctl hw.memsize iogpu.wired_limit_mb kern.memorystatus_vm_pressure_level` on a 64 GB M2 Max.
SYSCTL_64GB_DEFAULT = """hw.memsize: 68719476736
iogpu.wired_limit_mb: 0
kern.memorystatus_vm_pressure_level: 1
"""
SYSCTL_64GB_RAISED = """hw.memsize: 68719476736
iogpu.wired_limit_mb: 57344
kern.memorystatus_vm_pressure_level: 2
"""
SYSCTL_16GB_CRITICAL = """hw.memsize: 17179869184
iogpu.wired_limit_mb: 0
kern.memorystatus_vm_pressure_level: 4
"""
VM_STAT = """Mach Virtual Memory Statistics: (page size of 16384 bytes)
Pages free:                              1048576.
Pages active:                            1310720.
Pages inactive:                          1228800.
Pages speculative:                         65536.
Pages throttled:                               0.
Pages wired down:                         524288.
Pages purgeable:                           16384.
"Translation faults":                  123456789.
Pages copy-on-write:                     4567890.
"""
