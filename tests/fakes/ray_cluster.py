"""A real Ray cluster on loopback for tests: a head and worker nodes started with ``ray start``.

    with ray_cluster(worker_nodes=1) as cluster:          # a head and one worker node, one CPU each
        ... Workers(address=cluster.address) ...         # submit to it by address
        cluster.kill_task_worker("train_window")         # SIGKILL the worker process running that task

Isolation: other sessions on the machine may run Ray too, so the cluster has its own temp dir
(short: Ray's socket paths must fit in 107 bytes) and free ports, and is stopped by killing only
its own processes (those whose command line names its temp dir, and their children: the workers),
never with ``ray stop``, which stops every Ray on the machine.

Finding a task's worker: while a Ray worker runs a task its process title (``/proc/PID/cmdline``)
is ``ray::FUNCTION``, so ``kill_task_worker`` waits for a process of this cluster with that title
and kills it with SIGKILL: the task's worker dies mid-task, as on a node that runs out of memory.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

RAY = str(Path(sys.executable).parent / "ray")
START_TIMEOUT_S = 120


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace").strip()
    except OSError:  # gone
        return ""


def _parent(pid: int) -> int:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return 0
    return int(stat.rsplit(")", 1)[1].split()[1])  # after the (command), state then ppid


def _pids() -> list[int]:
    return [int(name) for name in os.listdir("/proc") if name.isdigit()]


@dataclass
class RayCluster:
    address: str
    temp_dir: Path

    def processes(self) -> list[int]:
        """This cluster's processes: those naming its temp dir, and their descendants (the workers)."""
        pids = _pids()
        parents = {pid: _parent(pid) for pid in pids}
        ours = {pid for pid in pids if str(self.temp_dir) in _cmdline(pid)}
        grew = True
        while grew:
            children = {pid for pid, parent in parents.items() if parent in ours} - ours
            ours |= children
            grew = bool(children)
        return sorted(ours)

    def task_workers(self, function: str) -> list[int]:
        """The worker processes of this cluster running a task of ``function`` now."""
        return [pid for pid in self.processes() if _cmdline(pid).split(" ")[0] == f"ray::{function}"]

    def kill_task_worker(self, function: str, timeout_s: float = 120.0, running_s: float = 1.0) -> int:
        """SIGKILL the worker process of this cluster running ``function`` once it has run ``running_s``;
        returns its pid. An error if none runs it within ``timeout_s``."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if pids := self.task_workers(function):
                time.sleep(running_s)
                if pid := next(iter(set(pids) & set(self.task_workers(function))), None):
                    os.kill(pid, signal.SIGKILL)
                    return pid
            time.sleep(0.1)
        raise TimeoutError(f"no worker of the cluster at {self.address} ran {function} within {timeout_s} s")

    def stop(self, timeout_s: float = 30.0) -> None:
        """Kill this cluster's processes (SIGKILL: nothing of a test's cluster is kept, and Ray's daemons
        take over 5 s to exit on SIGTERM) and remove its temp dir."""
        deadline = time.monotonic() + timeout_s
        while (pids := self.processes()) and time.monotonic() < deadline:
            for pid in pids:
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            time.sleep(0.1)
        shutil.rmtree(self.temp_dir, ignore_errors=True)


def _ray_start(*args: str, env: dict, log: Path) -> None:
    done = subprocess.run([RAY, "start", "--disable-usage-stats", "--num-cpus", "1", *args], check=False, env=env, cwd=log.parent,
                          stdout=log.open("a"), stderr=subprocess.STDOUT, timeout=START_TIMEOUT_S)
    if done.returncode:
        raise RuntimeError(f"`ray start {' '.join(args)}` failed ({done.returncode}): see {log}\n{log.read_text()[-3000:]}")


def _node_ports() -> list[str]:
    """Free ports for the services whose defaults are fixed, so two clusters on one machine do not collide."""
    return ["--dashboard-agent-listen-port", str(free_port()), "--metrics-export-port", str(free_port()),
            "--runtime-env-agent-port", str(free_port())]


@contextmanager
def ray_cluster(worker_nodes: int = 1) -> Iterator[RayCluster]:
    """A head and ``worker_nodes`` worker nodes on 127.0.0.1, one CPU each; stopped (only them) afterwards.

    The nodes get no PYTHONPATH: a job's code reaches them only as the job ships it (backtests.parallel)."""
    temp_dir = Path(tempfile.mkdtemp(prefix="rc", dir="/tmp"))
    env = {key: value for key, value in os.environ.items() if not key.startswith("RAY_") and key != "PYTHONPATH"}
    env["PATH"] = f"{Path(sys.executable).parent}:{env.get('PATH', '')}"
    # Ray 2.60 turns token authentication on where ~/.ray/auth_token exists (any local ray.init writes one), and
    # a node without the token cannot join: on loopback, for a test, no authentication.
    env["RAY_AUTH_MODE"] = "disabled"
    port = free_port()
    cluster = RayCluster(f"127.0.0.1:{port}", temp_dir)
    log = temp_dir / "ray-start.log"
    try:
        _ray_start("--head", "--node-ip-address", "127.0.0.1", "--port", str(port), "--temp-dir", str(temp_dir),
                   "--include-dashboard", "false", "--dashboard-port", str(free_port()),
                   "--ray-client-server-port", str(free_port()), *_node_ports(), env=env, log=log)
        for _ in range(worker_nodes):
            _ray_start("--address", cluster.address, "--node-ip-address", "127.0.0.1", *_node_ports(), env=env, log=log)
        yield cluster
    finally:
        cluster.stop()
