"""The project's one way to run work on Ray: an embedded local Ray or an existing cluster.

    from backtests.parallel import Workers, ray_session, remote_task

    with ray_session(Workers(count=2)):               # or Workers(address="127.0.0.1:6379")
        ref = remote_task(train_window).remote(*args)  # one Ray task on one CPU
        result = ray.get(ref)                          # or ray.wait(refs, ...)

``Workers(count, address)``: ``address`` None starts an embedded Ray of ``count`` CPUs (None: this
machine's cores) for the ``with`` block and shuts it down after; an address ("127.0.0.1:6379",
"auto") connects to a cluster started with ``ray start`` (its nodes' ``--num-cpus`` set its size,
so ``count`` must then be None) and only disconnects. Inside a Ray task (Ray already initialized)
the session is the running one, left as it is.

Code. An embedded Ray's workers run on this machine and import this very checkout (its root put
first on their ``PYTHONPATH``), so numba's on-disk cache of compiled kernels (``__pycache__`` beside
the sources) serves every worker and every run: a fresh worker loads the kernels instead of
compiling them (9 s in each of two fresh workers at once on an idle 2-core machine, 20 s under load).
On a cluster the project's packages (the folders beside this one with an ``__init__.py``) travel
with the job as Ray ``py_modules``, so a worker on any node imports the driver's code, not whatever
copy that node has installed (each session's copy compiles the kernels afresh); third-party
packages (torch, nautilus_trader, ray) must be installed on every node. Data is not shipped:
catalogs and output folders are read and written by path, so they must be on a filesystem every
node sees (``require_shared_path`` says so when one is not), or, for a catalog, in object storage
(an ``s3://`` URL, read on each node with that node's ``AWS_*`` environment variables: an embedded
Ray's workers inherit this process's).

Failures. A task takes one CPU and is retried ``TASK_RETRIES`` times if its worker process dies
(killed, out of memory, node lost); an exception raised by the task itself is a bug or bad input
and is not retried (``retry_exceptions=False``): ``ray.get`` raises it.

Threads. Each worker process runs torch, OpenMP, MKL, OpenBLAS and numba on one thread (env vars
set in the job's runtime_env, and ``torch.set_num_threads(1)`` when the process starts), so N
workers on N cores do not oversubscribe them.

``map_ordered(fn, calls, workers)`` runs ``fn(*args)`` for each of ``calls`` as Ray tasks and
yields the results in call order, or one by one in this process when ``workers`` asks for one
embedded worker (``Workers(count=1)``): then no Ray is started and the work is what it was.
"""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from marketdata.object_storage import is_url

log = logging.getLogger(__name__)

TASK_RETRIES = 3  # a task whose worker process dies runs again, up to this many times
THREAD_ENV = {name: "1" for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "NUMBA_NUM_THREADS")}
PROJECT_ROOT = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class Workers:
    """Where Ray tasks run: ``count`` CPUs of an embedded Ray (None: the cores), or the cluster at ``address``."""

    count: int | None = None
    address: str | None = None

    def __post_init__(self):
        if self.count is not None and self.count < 1:
            raise ValueError(f"the number of workers must be at least 1, not {self.count}")
        if self.count is not None and self.address is not None:
            raise ValueError(f"a Ray cluster ({self.address}) has the CPUs its nodes were started with (`ray start --num-cpus`): "
                             "give a number of workers or an address, not both")

    @property
    def cpus(self) -> int | None:
        """The embedded Ray's CPUs (None on a cluster)."""
        if self.address is not None:
            return None
        return self.count if self.count is not None else os.process_cpu_count() or 1

    @property
    def in_process(self) -> bool:
        """One embedded worker: the work runs in this process, without Ray."""
        return self.address is None and self.cpus == 1


ONE_BY_ONE = Workers(count=1)  # the work runs in this process, as it did before Ray


def project_packages() -> list[str]:
    """The project's importable packages: the folders beside ``backtests`` with an ``__init__.py``."""
    return sorted(str(path.parent) for path in PROJECT_ROOT.glob("*/__init__.py"))


def limit_threads() -> None:
    """Run once in every worker process (Ray's worker_process_setup_hook): one torch thread."""
    import torch

    torch.set_num_threads(1)


def runtime_env(workers: Workers) -> dict:
    """The job's runtime_env: one thread per worker, and the project's code (see the module's docstring)."""
    env = {"env_vars": dict(THREAD_ENV), "worker_process_setup_hook": "backtests.parallel.limit_threads"}
    if workers.address is None:
        paths = [str(PROJECT_ROOT), *os.environ.get("PYTHONPATH", "").split(os.pathsep)]
        env["env_vars"]["PYTHONPATH"] = os.pathsep.join(dict.fromkeys(path for path in paths if path))
    else:
        env |= {"py_modules": project_packages(), "excludes": ["__pycache__"]}
    return env


@contextmanager
def ray_session(workers: Workers) -> Iterator[None]:
    """Ray started (embedded) or connected (cluster) for the block, with the project's code and thread limits."""
    import ray

    if ray.is_initialized():  # inside a task, or a caller's own session: use it as it is
        yield
        return
    options = {"runtime_env": runtime_env(workers), "logging_level": logging.WARNING, "configure_logging": True}
    if workers.address is not None:
        ray.init(address=workers.address, **options)
    else:
        ray.init(num_cpus=workers.cpus, include_dashboard=False, **options)
    try:
        yield
    finally:
        ray.shutdown()


def remote_task(fn: Callable):
    """``fn`` as a Ray task: one CPU, retried if its worker dies, never for its own exceptions."""
    import ray

    return ray.remote(num_cpus=1, max_retries=TASK_RETRIES, retry_exceptions=False)(fn)


def map_ordered(fn: Callable, calls: Iterable[tuple], workers: Workers) -> Iterator:
    """``fn(*args)`` for each of ``calls``, yielded in call order: all submitted at once as Ray tasks, or,
    with one embedded worker, each run here when the previous result has been taken."""
    if workers.in_process:
        for args in calls:
            yield fn(*args)
        return
    import ray

    with ray_session(workers):
        task = remote_task(fn)
        refs = [task.remote(*args) for args in calls]
        for ref in refs:
            yield ray.get(ref)


def require_shared_path(path: Path | str, what: str) -> None:
    """An error naming this node if ``path`` (a catalog, an output folder) is not there: on a cluster every
    node must see the same path, on a shared filesystem. An object-storage URL (``s3://...``) passes: every
    node reaches it (reading it says so if nothing is there)."""
    if is_url(path):
        return
    if not Path(path).exists():
        raise FileNotFoundError(
            f"{what} {path} not found on {socket.gethostname()}: every Ray worker reads and writes by path, so it must "
            "be on a filesystem all the cluster's nodes see, under the same path (an absolute one)"
        )
