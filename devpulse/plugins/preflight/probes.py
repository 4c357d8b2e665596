"""Memory probes, one plugin each: host RAM (psutil), NVIDIA GPUs (NVML), Apple Silicon.

Each returns the devices it can see, or None where it does not apply, so a team can add a
probe of its own (an AMD card, a remote box) as another `probe_memory` plugin.
"""

from __future__ import annotations

import platform
import re
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psutil

from devpulse.core.logs import get_logger
from devpulse.core.types import DeviceMemory
from devpulse.hookspecs import hookimpl
from devpulse.plugins.preflight import cgroup

log = get_logger(__name__)

MB = 1024 * 1024


class HostProbe:
    """CPU inference: memory the OS says is available, less a safety reserve.

    In a container the OS's figure is the host's; a cgroup memory limit below it is what
    counts, so the free memory is the lesser of the two. `cgroup_root` and `proc_cgroup` are
    where that limit is read; tests point them into a temporary tree.
    """

    def __init__(
        self,
        reserve_mb: int,
        cgroup_root: Path = cgroup.CGROUP_ROOT,
        proc_cgroup: Path = cgroup.PROC_CGROUP,
    ) -> None:
        self.reserve_mb = reserve_mb
        self.cgroup_root = cgroup_root
        self.proc_cgroup = proc_cgroup

    @hookimpl(trylast=True)
    def probe_memory(self) -> list[DeviceMemory]:
        vm = psutil.virtual_memory()
        total, available = vm.total // MB, vm.available // MB
        notes = [f"{self.reserve_mb} MB reserved for the system"]
        limit = cgroup.memory_limit(self.cgroup_root, self.proc_cgroup)
        if limit is not None and limit.limit // MB < total:
            total, available = limit.limit // MB, min(available, limit.free // MB)
            notes.append(f"container memory limit (cgroup v{limit.version}): {total} MB")
        return [
            DeviceMemory(
                device="cpu",
                kind="host",
                total_mb=total,
                free_mb=available,
                budget_mb=max(0, available - self.reserve_mb),
                notes=tuple(notes),
            )
        ]


class NvidiaProbe:
    """Every NVIDIA GPU NVML can see: total, free and used memory, and per-process use.

    Devices that answer "Not Supported" for memory (unified-memory boards such as Jetson and
    GB10) are reported with the host's RAM instead. `nvml` is the pynvml module (from
    nvidia-ml-py); tests pass a stand-in that replays recorded NVML answers.
    """

    def __init__(self, nvml: Any | None = None) -> None:
        self._nvml = nvml
        self._ready: bool | None = None
        self._told: set[tuple[str, str]] = set()  # NVML errors already logged

    def _load(self) -> Any | None:
        if self._ready is None:
            if self._nvml is None:
                try:
                    import pynvml  # noqa: PLC0415  # optional extra: devpulse[nvidia]
                except ImportError:
                    self._ready = False
                    return None
                self._nvml = pynvml
            try:
                self._nvml.nvmlInit()
                self._ready = True
            except Exception:  # no driver, no device: this probe does not apply
                self._ready = False
        return self._nvml if self._ready else None

    @hookimpl
    def probe_memory(self) -> list[DeviceMemory] | None:
        """Every GPU NVML can read. One it cannot (a GPU fallen off the bus, a driver
        upgraded under a running process) is left out, with a warning the first time: an
        error here would fail every request that preflight checks."""
        nvml = self._load()
        if nvml is None:
            return None
        devices = []
        # Should the count itself fail, preflight's every_probe leaves this probe out.
        for index in range(nvml.nvmlDeviceGetCount()):
            try:
                handle = nvml.nvmlDeviceGetHandleByIndex(index)
                name = _text(nvml.nvmlDeviceGetName(handle))
                devices.append(self._device(nvml, handle, f"cuda:{index} {name}"))
            except nvml.NVMLError as exc:
                self._warn(f"cuda:{index}", exc)
        return devices or None

    def _warn(self, device: str, exc: Exception) -> None:
        told = (device, str(exc))
        if told not in self._told:
            self._told.add(told)
            log.warning("preflight.nvml_failed", device=device, error=str(exc))

    def _device(self, nvml: Any, handle: Any, label: str) -> DeviceMemory:
        try:
            info = _memory_info(nvml, handle)
        except nvml.NVMLError_NotSupported:
            vm = psutil.virtual_memory()
            return DeviceMemory(
                device=label,
                kind="nvidia",
                total_mb=vm.total // MB,
                free_mb=vm.available // MB,
                budget_mb=vm.available // MB,
                notes=("memory info not supported (unified memory): using host RAM",),
            )
        processes = []
        try:
            for proc in nvml.nvmlDeviceGetComputeRunningProcesses(handle):
                used = getattr(proc, "usedGpuMemory", None)
                processes.append({"pid": proc.pid, "used_mb": used // MB if used else None})
        except nvml.NVMLError:
            pass
        return DeviceMemory(
            device=label,
            kind="nvidia",
            total_mb=info.total // MB,
            free_mb=info.free // MB,
            budget_mb=info.free // MB,
            processes=tuple(processes),
        )


def _memory_info(nvml: Any, handle: Any) -> Any:
    """nvmlDeviceGetMemoryInfo, v2 where the driver has it (it reports reserved memory)."""
    version = getattr(nvml, "nvmlMemory_v2", None)
    if version is not None:
        try:
            return nvml.nvmlDeviceGetMemoryInfo(handle, version=version)
        except (TypeError, nvml.NVMLError_FunctionNotFound):
            pass
    return nvml.nvmlDeviceGetMemoryInfo(handle)


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


# Pressure levels of kern.memorystatus_vm_pressure_level.
PRESSURE = {1: "normal", 2: "warning", 4: "critical"}


class AppleProbe:
    """Apple Silicon: the GPU's usable share of unified memory, and truly free memory.

    The share is `iogpu.wired_limit_mb` when set, else macOS's default (about two thirds of
    RAM up to 36 GB, three quarters above: Metal's recommendedMaxWorkingSetSize). Free memory
    counts free and speculative pages only, never inactive ones, and the pressure level is
    reported. `run` runs a command and returns its output; tests replay recorded output.
    """

    def __init__(self, run: Callable[[list[str]], str] | None = None) -> None:
        self._run = run or _run
        self._applies = run is not None or (
            platform.system() == "Darwin" and platform.machine() == "arm64"
        )

    @hookimpl(tryfirst=True)
    def probe_memory(self) -> list[DeviceMemory] | None:
        if not self._applies:
            return None
        sysctl = parse_sysctl(
            self._run(
                [
                    "sysctl",
                    "hw.memsize",
                    "iogpu.wired_limit_mb",
                    "kern.memorystatus_vm_pressure_level",
                ]
            )
        )
        free_bytes = parse_vm_stat(self._run(["vm_stat"]))
        total_mb = int(sysctl.get("hw.memsize", 0)) // MB
        wired = int(sysctl.get("iogpu.wired_limit_mb", 0) or 0)
        share = wired or int(total_mb * (2 / 3 if total_mb <= 36 * 1024 else 3 / 4))
        pressure = PRESSURE.get(
            int(sysctl.get("kern.memorystatus_vm_pressure_level", 1)), "unknown"
        )
        notes = [
            f"GPU share {'iogpu.wired_limit_mb' if wired else 'macOS default'}: {share} MB",
            f"memory pressure: {pressure}",
        ]
        budget = min(free_bytes // MB, share)
        if pressure == "critical":
            budget, notes = 0, [*notes, "critical memory pressure: nothing new should load"]
        return [
            DeviceMemory(
                device="apple-gpu",
                kind="apple",
                total_mb=total_mb,
                free_mb=free_bytes // MB,
                budget_mb=budget,
                notes=tuple(notes),
            )
        ]


def parse_sysctl(text: str) -> dict[str, str]:
    """`sysctl a b c` output ("name: value" lines) as a dict; unknown names are skipped."""
    out = {}
    for line in text.splitlines():
        name, sep, value = line.partition(":")
        if sep:
            out[name.strip()] = value.strip()
    return out


def parse_vm_stat(text: str) -> int:
    """Free bytes from `vm_stat`: free + speculative pages (inactive pages are not free)."""
    # Python's `re` is safe here: the text is macOS's own short vm_stat report, never a
    # request's text, and no pattern nests its repetitions.
    page = re.search(r"page size of (\d+) bytes", text)
    size = int(page.group(1)) if page else 16384
    pages = {
        m.group(1): int(m.group(2))
        for m in re.finditer(r'^"?Pages ([\w ]+?)"?:\s+(\d+)\.?$', text, re.MULTILINE)
    }
    return (pages.get("free", 0) + pages.get("speculative", 0)) * size


def _run(cmd: list[str]) -> str:
    return subprocess.run(cmd, capture_output=True, text=True, timeout=2, check=False).stdout
