"""A container's memory limit, as its cgroup sets it.

Inside a container /proc/meminfo (and so psutil) shows the host's memory, while the kernel
kills the container at its cgroup's limit. This reads the limit and the usage of the
process's own cgroup and of every cgroup above it (a parent's limit binds its children),
cgroup v2 first, then v1. A few small reads, on the probe's TTL cache.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

CGROUP_ROOT = Path("/sys/fs/cgroup")
PROC_CGROUP = Path("/proc/self/cgroup")

# cgroup v1 writes "no limit" as the largest page-aligned 64-bit value; anything this large
# is no limit in practice.
UNLIMITED = 1 << 62


@dataclass(frozen=True, slots=True)
class Limit:
    """The tightest limit over this process: its size, and the bytes still free under it."""

    limit: int
    free: int
    version: int


def memory_limit(root: Path = CGROUP_ROOT, proc_cgroup: Path = PROC_CGROUP) -> Limit | None:
    """The container limit that leaves the least free memory, or None where none is set.

    `root` is where the cgroup filesystem is mounted and `proc_cgroup` the process's
    membership file; tests point both into a temporary tree.
    """
    paths = _membership(proc_cgroup)
    if (root / "cgroup.controllers").exists():  # v2: one unified hierarchy
        found = _tightest(root, paths.get("", "/"), "memory.max", "memory.current", "")
        return Limit(found[0], found[1], 2) if found else None
    memory = root / "memory"
    if memory.is_dir():  # v1: the memory controller's own hierarchy
        found = _tightest(
            memory,
            paths.get("memory", "/"),
            "memory.limit_in_bytes",
            "memory.usage_in_bytes",
            "total_",
        )
        return Limit(found[0], found[1], 1) if found else None
    return None


def _membership(proc_cgroup: Path) -> dict[str, str]:
    """/proc/self/cgroup as {controller: path}; v2's "0::/path" line is under ""."""
    out: dict[str, str] = {}
    try:
        text = proc_cgroup.read_text()
    except OSError:
        return out
    for line in text.splitlines():
        parts = line.split(":", 2)
        if len(parts) == 3:
            for controller in parts[1].split(",") if parts[1] else [""]:
                out[controller] = parts[2]
    return out


def _tightest(
    base: Path, path: str, limit_file: str, usage_file: str, stat_prefix: str
) -> tuple[int, int] | None:
    """(limit, free bytes) of the cgroup with the least free memory, from `path` up to `base`.

    Without a cgroup namespace the path names the cgroup as the host sees it, which may not
    exist under the container's mount: walking up reaches `base`, the container's own.
    """
    parts = [p for p in path.split("/") if p]
    here = base if ".." in parts else base.joinpath(*parts)  # ".." = outside our namespace
    tightest: tuple[int, int] | None = None
    for folder in [here, *here.parents]:
        if not folder.is_relative_to(base):
            break
        limit = _number(folder / limit_file)
        if limit is None or limit >= UNLIMITED:
            continue
        usage = _number(folder / usage_file) or 0
        # Inactive page cache counts as usage but the kernel reclaims it before it kills
        # anything: docker stats and the kubelet leave it out the same way.
        usage -= min(usage, _stat(folder / "memory.stat", f"{stat_prefix}inactive_file"))
        free = max(0, limit - usage)
        if tightest is None or free < tightest[1]:
            tightest = (limit, free)
    return tightest


def _number(file: Path) -> int | None:
    """An integer file's value; None for "max", a missing file or anything unreadable."""
    try:
        return int(file.read_text().strip())
    except (OSError, ValueError):
        return None


def _stat(file: Path, key: str) -> int:
    try:
        text = file.read_text()
    except OSError:
        return 0
    for line in text.splitlines():
        name, _, value = line.partition(" ")
        if name == key:
            return int(value) if value.strip().isdigit() else 0
    return 0
