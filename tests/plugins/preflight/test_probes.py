"""Probes: host RAM for real; NVIDIA and Apple over recorded answers."""

from __future__ import annotations

from pathlib import Path

import psutil
import pytest

from devpulse.plugins.preflight.probes import (
    AppleProbe,
    HostProbe,
    NvidiaProbe,
    parse_sysctl,
    parse_vm_stat,
)
from tests.plugins.preflight import recorded

MB = 1024 * 1024


def test_host_probe_reads_this_machine() -> None:
    (device,) = HostProbe(reserve_mb=1024).probe_memory()
    vm = psutil.virtual_memory()
    assert device.kind == "host"
    assert device.total_mb == vm.total // MB
    assert abs(device.free_mb - vm.available // MB) < 512
    assert device.budget_mb == device.free_mb - 1024


def _cgroup_tree(root: Path, files: dict[str, str]) -> tuple[Path, Path]:
    """A fake /sys/fs/cgroup under `root`, and a /proc/self/cgroup beside it."""
    for name, text in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)
    return root / "sys", root / "proc_self_cgroup"


def test_host_probe_counts_a_cgroup_v2_limit_less_its_usage(tmp_path) -> None:
    sys_root, proc = _cgroup_tree(
        tmp_path,
        {
            "proc_self_cgroup": "0::/app\n",
            "sys/cgroup.controllers": "cpu memory\n",
            "sys/app/memory.max": f"{1024 * MB}\n",
            "sys/app/memory.current": f"{1000 * MB}\n",
            # Inactive page cache is reclaimable, so it does not count as used.
            "sys/app/memory.stat": f"anon 1\ninactive_file {100 * MB}\n",
        },
    )
    (device,) = HostProbe(reserve_mb=64, cgroup_root=sys_root, proc_cgroup=proc).probe_memory()
    assert (device.total_mb, device.free_mb, device.budget_mb) == (1024, 124, 60)
    assert "container memory limit (cgroup v2): 1024 MB" in device.as_dict()["notes"]


def test_host_probe_takes_the_tightest_limit_of_the_cgroup_and_its_parents(tmp_path) -> None:
    sys_root, proc = _cgroup_tree(
        tmp_path,
        {
            "proc_self_cgroup": "0::/pod/app\n",
            "sys/cgroup.controllers": "memory\n",
            "sys/pod/memory.max": f"{512 * MB}\n",
            "sys/pod/memory.current": f"{400 * MB}\n",
            "sys/pod/app/memory.max": "max\n",
            "sys/pod/app/memory.current": f"{300 * MB}\n",
        },
    )
    (device,) = HostProbe(reserve_mb=0, cgroup_root=sys_root, proc_cgroup=proc).probe_memory()
    assert (device.total_mb, device.free_mb) == (512, 112)


def test_host_probe_finds_the_limit_at_the_mount_when_the_cgroup_path_is_the_hosts(
    tmp_path,
) -> None:
    # Without a cgroup namespace /proc/self/cgroup names the host's path, which is not under
    # the container's mount; the container's own cgroup is the mount itself.
    sys_root, proc = _cgroup_tree(
        tmp_path,
        {
            "proc_self_cgroup": "0::/system.slice/docker-abc.scope\n",
            "sys/cgroup.controllers": "memory\n",
            "sys/memory.max": f"{2048 * MB}\n",
            "sys/memory.current": f"{1024 * MB}\n",
        },
    )
    (device,) = HostProbe(reserve_mb=0, cgroup_root=sys_root, proc_cgroup=proc).probe_memory()
    assert (device.total_mb, device.free_mb) == (2048, 1024)


def test_host_probe_counts_a_cgroup_v1_limit(tmp_path) -> None:
    sys_root, proc = _cgroup_tree(
        tmp_path,
        {
            "proc_self_cgroup": "5:memory:/docker/abc\n0::/\n",
            "sys/memory/docker/abc/memory.limit_in_bytes": f"{1024 * MB}\n",
            "sys/memory/docker/abc/memory.usage_in_bytes": f"{900 * MB}\n",
            "sys/memory/docker/abc/memory.stat": f"total_inactive_file {76 * MB}\n",
        },
    )
    (device,) = HostProbe(reserve_mb=0, cgroup_root=sys_root, proc_cgroup=proc).probe_memory()
    assert (device.total_mb, device.free_mb) == (1024, 200)
    assert "container memory limit (cgroup v1): 1024 MB" in device.notes


@pytest.mark.parametrize(
    "files",
    [
        {"sys/cgroup.controllers": "memory\n", "sys/memory.max": "max\n"},
        {"sys/memory/memory.limit_in_bytes": "9223372036854771712\n"},
        {},
    ],
    ids=["v2 max", "v1 unlimited", "no cgroup filesystem"],
)
def test_host_probe_without_a_container_limit_reports_the_host(tmp_path, files) -> None:
    sys_root, proc = _cgroup_tree(tmp_path, {"proc_self_cgroup": "0::/\n", **files})
    (device,) = HostProbe(reserve_mb=0, cgroup_root=sys_root, proc_cgroup=proc).probe_memory()
    assert device.total_mb == psutil.virtual_memory().total // MB
    assert device.notes == ("0 MB reserved for the system",)


def test_nvidia_v2_memory_and_processes() -> None:
    nvml = recorded.RecordedNvml([recorded.H100])
    (gpu,) = NvidiaProbe(nvml).probe_memory()
    assert gpu.device == "cuda:0 NVIDIA H100 80GB HBM3"
    assert (gpu.total_mb, gpu.free_mb, gpu.budget_mb) == (81559, 60288, 60288)
    assert gpu.processes == ({"pid": 4121, "used_mb": 20480},)
    assert nvml.calls == ["memory v2"]


def test_nvidia_h200_as_recorded_agrees_with_nvidia_smi() -> None:
    (idle,) = NvidiaProbe(recorded.RecordedNvml([recorded.H200_IDLE])).probe_memory()
    smi = recorded.H200_SMI_IDLE
    assert idle.device == "cuda:0 NVIDIA H200"
    assert idle.total_mb == smi["total"]
    assert smi["free"] - 1 <= idle.free_mb <= smi["free"]  # MiB floored here, rounded there
    assert idle.processes == ()
    (held,) = NvidiaProbe(recorded.RecordedNvml([recorded.H200_HELD])).probe_memory()
    assert held.free_mb == 44233
    assert held.processes == ({"pid": 523, "used_mb": 98914},)


def test_nvidia_v1_and_v2_agree_on_free_memory() -> None:
    v1_only = {**recorded.H200_HELD, "v2": False}
    (v2,) = NvidiaProbe(recorded.RecordedNvml([recorded.H200_HELD])).probe_memory()
    (v1,) = NvidiaProbe(recorded.RecordedNvml([v1_only])).probe_memory()
    assert v1.free_mb == v2.free_mb == 44233


def test_nvidia_falls_back_to_v1_where_the_driver_lacks_v2() -> None:
    nvml = recorded.RecordedNvml([recorded.RTX_4090_V1_ONLY])
    (gpu,) = NvidiaProbe(nvml).probe_memory()
    assert gpu.free_mb == 24990580736 // MB
    assert nvml.calls == ["memory v2", "memory v1"]


def test_nvidia_not_supported_reports_host_ram() -> None:
    nvml = recorded.RecordedNvml([recorded.UNIFIED_BOARD, recorded.H100])
    board, h100 = NvidiaProbe(nvml).probe_memory()
    assert board.device == "cuda:0 Orin (nvgpu)"
    assert board.total_mb == psutil.virtual_memory().total // MB
    assert "unified memory" in board.notes[0]
    assert h100.total_mb == 81559


def test_a_gpu_nvml_cannot_read_is_left_out_with_one_warning(caplog) -> None:
    probe = NvidiaProbe(recorded.RecordedNvml([recorded.LOST, recorded.H200_IDLE]))
    (gpu,) = probe.probe_memory() or []
    assert gpu.device == "cuda:1 NVIDIA H200"
    assert probe.probe_memory() == [gpu]
    warned = [r for r in caplog.records if "preflight.nvml_failed" in r.getMessage()]
    assert len(warned) == 1
    assert warned[0].devpulse_fields == {"device": "cuda:0", "error": "GPU is lost"}


def test_no_gpu_nvml_can_read_does_not_apply() -> None:
    assert NvidiaProbe(recorded.RecordedNvml([recorded.LOST])).probe_memory() is None


def test_nvidia_without_a_driver_does_not_apply() -> None:
    assert NvidiaProbe(recorded.RecordedNvml([], init_fails=True)).probe_memory() is None


def test_tests_see_no_gpu_of_this_machine_unless_marked() -> None:
    assert NvidiaProbe().probe_memory() is None  # tests/conftest.py: no_machine_gpus
    assert AppleProbe().probe_memory() is None


@pytest.mark.machine_gpus
def test_nvidia_probe_on_this_machine() -> None:
    """Where pynvml and a driver are present (an NVIDIA machine), the real probe reports
    each GPU's memory consistently; elsewhere it does not apply."""
    gpus = NvidiaProbe().probe_memory()
    for gpu in gpus or ():
        assert gpu.device.startswith("cuda:")
        assert 0 <= gpu.free_mb <= gpu.total_mb
        assert gpu.budget_mb == gpu.free_mb


def test_vm_stat_counts_free_and_speculative_pages_only() -> None:
    assert parse_vm_stat(recorded.VM_STAT) == (1048576 + 65536) * 16384


def test_sysctl_parsing() -> None:
    values = parse_sysctl(recorded.SYSCTL_64GB_RAISED)
    assert values == {
        "hw.memsize": "68719476736",
        "iogpu.wired_limit_mb": "57344",
        "kern.memorystatus_vm_pressure_level": "2",
    }


def replay(sysctl: str):
    return lambda cmd: sysctl if cmd[0] == "sysctl" else recorded.VM_STAT


@pytest.mark.parametrize(
    ("sysctl", "share", "budget", "pressure"),
    [
        (recorded.SYSCTL_64GB_DEFAULT, 49152, 17408, "normal"),  # 3/4 of 64 GB; 17 GB free
        (recorded.SYSCTL_64GB_RAISED, 57344, 17408, "warning"),  # iogpu.wired_limit_mb wins
        (recorded.SYSCTL_16GB_CRITICAL, 10922, 0, "critical"),  # 2/3 of 16 GB; no budget
    ],
)
def test_apple_gpu_share_free_memory_and_pressure(sysctl, share, budget, pressure) -> None:
    (gpu,) = AppleProbe(run=replay(sysctl)).probe_memory()
    assert gpu.kind == "apple"
    assert f"{share} MB" in gpu.notes[0]
    assert gpu.budget_mb == budget
    assert f"memory pressure: {pressure}" in gpu.notes


def test_apple_probe_does_not_apply_elsewhere() -> None:
    assert AppleProbe().probe_memory() is None  # this test machine is Linux
