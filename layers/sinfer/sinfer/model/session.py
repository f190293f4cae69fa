"""The one place ONNX Runtime sessions are built.

Threads come from the CPUs this process may actually use. ``os.cpu_count()`` overstates that
in Lambda (a 1,769 MB function sees two cores but is billed one vCPU's time) and in cgroup-limited
containers, so the count is the smallest of: the affinity mask, the CPU quotas of this process's
cgroups, and Lambda's memory-to-vCPU rule (one vCPU per 1,769 MB).

The quotas: cgroup v2's ``cpu.max`` at the mount's root (a container's own cgroup, in its
namespace) and at this process's cgroup and each of its ancestors (a systemd unit's
``CPUQuota``, a nested cgroup without its own namespace: a parent's quota binds its children),
and cgroup v1's ``cpu.cfs_quota_us`` / ``cpu.cfs_period_us`` along the same path (``docker
--cpus`` on a v1 or hybrid host).
"""

from __future__ import annotations

import math
import os
from typing import Any

LAMBDA_MB_PER_VCPU = 1769
CGROUP_ROOT = "/sys/fs/cgroup"
PROC_CGROUP = "/proc/self/cgroup"


def available_cpus() -> int:
    candidates = [len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1]
    candidates += cgroup_cpu_quotas()
    memory = os.environ.get("AWS_LAMBDA_FUNCTION_MEMORY_SIZE")
    if memory and memory.isdigit():
        candidates.append(max(1, math.ceil(int(memory) / LAMBDA_MB_PER_VCPU)))
    override = os.environ.get("SINFER_THREADS")
    if override and override.isdigit() and int(override) > 0:
        return int(override)
    return max(1, min(candidates))


def cgroup_cpu_quotas() -> list[int]:
    """Every CPU quota of this process's cgroups found, in whole CPUs (rounded up)."""
    v2 = [os.path.join(CGROUP_ROOT, "cpu.max")]
    v1: list[str] = []
    try:
        with open(PROC_CGROUP) as handle:
            entries = handle.read().splitlines()
    except OSError:
        entries = []
    for entry in entries:  # "hierarchy-id:controllers:path"
        fields = entry.split(":", 2)
        if len(fields) != 3:
            continue
        if ".." in fields[2].split("/"):  # outside this cgroup namespace: not a path under the mount
            continue
        parts = [part for part in fields[2].split("/") if part]
        folders = [os.path.join(*parts[:depth]) for depth in range(1, len(parts) + 1)]
        if fields[0] == "0" and not fields[1]:  # the v2 hierarchy
            v2 += [os.path.join(CGROUP_ROOT, folder, "cpu.max") for folder in folders]
        elif "cpu" in fields[1].split(","):
            for mount in ("cpu,cpuacct", "cpu"):
                v1 += [os.path.join(CGROUP_ROOT, mount, folder) for folder in ["", *folders]]
    quotas = [_quota(*_read(path)[:2]) for path in v2]
    quotas += [
        _quota(
            _read(os.path.join(folder, "cpu.cfs_quota_us"))[0],
            _read(os.path.join(folder, "cpu.cfs_period_us"))[0],
        )
        for folder in v1
    ]
    return [quota for quota in quotas if quota is not None]


def _read(path: str) -> list[str]:
    try:
        with open(path) as handle:
            return [*handle.read().split(), "", ""]
    except OSError:
        return ["", ""]


def _quota(quota: str, period: str) -> int | None:
    """CPUs a quota per period grants; None for none ("max" in v2, -1 in v1) or unreadable."""
    if not (quota.isdigit() and period.isdigit()) or int(period) == 0 or int(quota) == 0:
        return None
    return max(1, math.ceil(int(quota) / int(period)))


def create_session(model_path: str | os.PathLike[str], threads: int | None = None) -> Any:
    """An InferenceSession with full graph optimisation on the CPU provider."""
    # (ORT_DISABLE_TELEMETRY is set on importing sinfer, before onnxruntime is imported: see
    # sinfer/__init__.py.)
    import onnxruntime as ort  # deferred: only processes that run a model pay for the import

    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.intra_op_num_threads = threads or available_cpus()
    options.inter_op_num_threads = 1
    # Idle intra-op threads spin-wait by default, taking the core that the GIL-bound parsing and
    # formatting around each run need (measured: 0.3 -> 0.5 of parse-only for a CSV on 2 cores).
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    # Lambda's /tmp is the only writable place; never write optimised models beside the source.
    options.log_severity_level = 3
    return ort.InferenceSession(
        os.fspath(model_path), sess_options=options, providers=["CPUExecutionProvider"]
    )
