"""Session factory: threads from the CPUs the process may use, full optimisation, CPU provider."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest
from onnx import TensorProto

from sinfer.model import session
from sinfer.model.session import available_cpus, create_session
from tests.conftest import ROOT
from tests.unit import onnx_graphs


@pytest.fixture
def cpus(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """Four CPUs in the affinity mask, no cgroup quota, no Lambda or override variables.

    Returns the path standing in for /sys/fs/cgroup/cpu.max (absent until a test writes it);
    its folder stands in for /sys/fs/cgroup, and ``proc_cgroup`` for /proc/self/cgroup (absent).
    """
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 1, 2, 3}, raising=False)
    root = tmp_path / "cgroup"
    root.mkdir()
    cpu_max = root / "cpu.max"
    monkeypatch.setattr(session, "CGROUP_ROOT", str(root))
    monkeypatch.setattr(session, "PROC_CGROUP", str(tmp_path / "proc_cgroup"))
    monkeypatch.delenv("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", raising=False)
    monkeypatch.delenv("SINFER_THREADS", raising=False)
    return cpu_max


def test_affinity_mask_bounds_the_thread_count(cpus: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert available_cpus() == 4
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {2})
    assert available_cpus() == 1


@pytest.mark.parametrize(
    ("memory_mb", "expected"), [("128", 1), ("1769", 1), ("1770", 2), ("3538", 2), ("10240", 4)]
)
def test_lambda_memory_maps_to_vcpus(
    cpus: Path, monkeypatch: pytest.MonkeyPatch, memory_mb: str, expected: int
) -> None:
    # 1,769 MB buys one vCPU; never more than the affinity mask allows (4 here)
    monkeypatch.setenv("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", memory_mb)
    assert available_cpus() == expected


def test_cgroup_quota_bounds_the_thread_count(cpus: Path) -> None:
    cpus.write_text("150000 100000\n")  # 1.5 CPUs of quota → 2 threads
    assert available_cpus() == 2
    cpus.write_text("max 100000\n")
    assert available_cpus() == 4


def test_a_nested_cgroup_v2_quota_and_its_ancestors_bound_the_thread_count(cpus: Path) -> None:
    # a systemd unit's CPUQuota, seen without a cgroup namespace: the process's own cgroup
    (cpus.parent.parent / "proc_cgroup").write_text("0::/system.slice/app.service\n")
    unit = cpus.parent / "system.slice" / "app.service"
    unit.mkdir(parents=True)
    (unit / "cpu.max").write_text("200000 100000\n")
    assert available_cpus() == 2
    (unit.parent / "cpu.max").write_text("100000 100000\n")  # the parent's binds its children
    assert available_cpus() == 1


def test_a_cgroup_v1_quota_bounds_the_thread_count(cpus: Path) -> None:
    # docker --cpus=2.5 on a v1 (or hybrid) host: the cpu controller's cfs quota, at the root of
    # the container's namespace or along its path
    (cpus.parent.parent / "proc_cgroup").write_text("4:memory:/docker/abc\n3:cpu,cpuacct:/docker/abc\n0::/\n")
    folder = cpus.parent / "cpu,cpuacct" / "docker" / "abc"
    folder.mkdir(parents=True)
    (folder / "cpu.cfs_quota_us").write_text("250000\n")
    (folder / "cpu.cfs_period_us").write_text("100000\n")
    assert available_cpus() == 3
    (folder / "cpu.cfs_quota_us").write_text("-1\n")  # no quota
    assert available_cpus() == 4


def test_unreadable_cgroup_files_are_no_quota(cpus: Path) -> None:
    (cpus.parent.parent / "proc_cgroup").write_text("garbage\n1:cpu:\n")
    cpus.write_text("0 100000\n")
    assert available_cpus() == 4


def test_a_cgroup_outside_the_namespace_is_not_read_as_one_under_the_mount(cpus: Path) -> None:
    # "/../batch": this process's cgroup lies outside the namespace the mount shows; the mount's
    # "batch" is another cgroup that happens to share the name
    (cpus.parent.parent / "proc_cgroup").write_text("0::/../batch\n")
    other = cpus.parent / "batch"
    other.mkdir()
    (other / "cpu.max").write_text("100000 100000\n")
    assert available_cpus() == 4


def test_sinfer_threads_overrides_everything(cpus: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "1769")
    monkeypatch.setenv("SINFER_THREADS", "3")
    assert available_cpus() == 3
    monkeypatch.setenv("SINFER_THREADS", "zero")  # not a positive integer: ignored
    assert available_cpus() == 1


def test_session_is_fully_optimised_on_cpu_with_derived_threads(
    cpus: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    # GIVEN a Lambda with 3,538 MB (two vCPUs)
    monkeypatch.setenv("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "3538")
    path = onnx_graphs.identity(tmp_path, "id", TensorProto.FLOAT, ["N", 2])

    # WHEN the session is built
    built = create_session(path)

    # THEN it uses all graph optimisations, the CPU provider and two intra-op threads, which
    # sleep between runs instead of spinning on the core the Python thread needs
    options = built.get_session_options()
    assert options.graph_optimization_level == ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    assert options.intra_op_num_threads == 2
    assert options.get_session_config_entry("session.intra_op.allow_spinning") == "0"
    assert built.get_providers() == ["CPUExecutionProvider"]
    out = built.run(None, {"x": np.ones((1, 2), np.float32)})
    assert np.array_equal(out[0], np.ones((1, 2), np.float32))


def test_explicit_thread_count_wins(tmp_path: Path) -> None:
    path = onnx_graphs.identity(tmp_path, "id", TensorProto.FLOAT, ["N", 2])
    assert create_session(path, threads=1).get_session_options().intra_op_num_threads == 1


def test_onnxruntime_telemetry_is_off_unless_asked_for() -> None:
    # ORT's telemetry looked up mobile.events.data.microsoft.com every few seconds once a model
    # ran (strace: 8 connects in 30 s; none with the variable set). ORT reads the variable when
    # it is imported, so importing sinfer sets it, before anything of sinfer imports ORT.
    import subprocess
    import sys

    child = (
        "import os, sys; import sinfer; "
        "print(os.environ.get('ORT_DISABLE_TELEMETRY'), 'onnxruntime' in sys.modules)"
    )
    env = {k: v for k, v in os.environ.items() if k != "ORT_DISABLE_TELEMETRY"}
    env["PYTHONPATH"] = str(ROOT / "layers" / "sinfer")
    done = subprocess.run([sys.executable, "-c", child], env=env, capture_output=True, text=True, check=True)
    assert done.stdout.split() == ["1", "False"]
    env["ORT_DISABLE_TELEMETRY"] = "0"  # a caller's own choice stands
    done = subprocess.run([sys.executable, "-c", child], env=env, capture_output=True, text=True, check=True)
    assert done.stdout.split() == ["0", "False"]
