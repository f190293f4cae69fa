"""A sinfer server run as a subprocess on a free loopback port, as a user (or SageMaker) runs it."""

from __future__ import annotations

import signal
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from sinfer.local.stack import free_port
from tests.conftest import ROOT


@dataclass
class ServerProcess:
    process: subprocess.Popen[bytes]
    port: int
    stdout: BinaryIO
    stderr: BinaryIO

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def logs(self) -> str:
        self.stderr.seek(0)
        return self.stderr.read().decode("utf-8", "replace")[-3000:]

    def stop(self) -> int:
        """SIGTERM, as a service manager or ``docker stop`` does; kill only if it does not stop in time."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        return self.process.returncode


def spawn(
    tmp_path: Path, label: str, args: Callable[[int], list[str]], env: dict[str, str], cwd: Path = ROOT
) -> ServerProcess:
    """``python -m sinfer.cli.main <args(port)>`` in ``cwd``, its output kept in files under ``tmp_path``."""
    port = free_port()
    stdout = (tmp_path / f"{label}-{port}.out").open("w+b")
    stderr = (tmp_path / f"{label}-{port}.err").open("w+b")
    command = [sys.executable, "-m", "sinfer.cli.main", *args(port)]
    process = subprocess.Popen(command, cwd=cwd, env=env, stdout=stdout, stderr=stderr)
    return ServerProcess(process, port, stdout, stderr)
