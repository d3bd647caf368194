"""Where trials run: local worker processes, or Ray tasks on a cluster.

Both take a :class:`~engine_plugin_optimize.trial.TrialSetup` once and then
run :class:`~engine_plugin_optimize.trial.TrialSpec` s, ``slots`` at a time:

* :class:`LocalBackend`: a pool of ``jobs`` processes (spawned, so nothing of
  the driver's threads or state leaks in); each receives the setup once, when
  it starts, and keeps its runner for every trial after.
* :class:`RayBackend`: one Ray task per trial. The setup goes into the object
  store once (``ray.put``), so each node fetches it once; each Ray worker
  process prepares it on its first trial and keeps it.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import socket
import uuid
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from typing import Any, Protocol
from urllib.parse import urlsplit

from engine_core import EngineError
from engine_plugin_optimize.trial import TrialOutcome, TrialSetup, TrialSpec, init_process, run_in_process, run_on_ray

CONNECT_TIMEOUT = 5.0  # seconds a Ray address has to accept a connection


class Backend(Protocol):
    slots: int  # trials it runs at once

    def submit(self, spec: TrialSpec) -> None: ...

    def results(self) -> list[TrialOutcome]:
        """Block until at least one submitted trial has finished; return every finished one."""
        ...

    def close(self, *, cancel: bool = False) -> None: ...


def cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        return os.cpu_count() or 1


class LocalBackend:
    """Trials in ``jobs`` worker processes on this machine."""

    def __init__(self, setup: TrialSetup, jobs: int | None = None) -> None:
        self.slots = jobs or cores()
        self.setup = setup
        self.pending: dict[Future[TrialOutcome], TrialSpec] = {}
        self.pool = self._pool()

    def _pool(self) -> ProcessPoolExecutor:
        return ProcessPoolExecutor(
            max_workers=self.slots,
            mp_context=multiprocessing.get_context("spawn"),
            initializer=init_process,
            initargs=(self.setup,),
        )

    def submit(self, spec: TrialSpec) -> None:
        self.pending[self.pool.submit(run_in_process, spec)] = spec

    def results(self) -> list[TrialOutcome]:
        done, _ = wait(list(self.pending), return_when=FIRST_COMPLETED)
        out = []
        broken = False
        for future in done:
            spec = self.pending.pop(future)
            try:
                out.append(future.result())
            except BrokenProcessPool:
                broken = True
                out.append(TrialOutcome(spec.key, None, "a worker process died (out of memory or a crash)", 0.0))
        if broken:
            # every other trial in flight went down with the pool: fail them and start a new one
            for spec in self.pending.values():
                out.append(TrialOutcome(spec.key, None, "a worker process died while this trial ran", 0.0))
            self.pending.clear()
            self.pool.shutdown(wait=False)
            self.pool = self._pool()
        return out

    def close(self, *, cancel: bool = False) -> None:
        if not cancel:
            self.pool.shutdown(wait=True)
            return
        processes = list(getattr(self.pool, "_processes", {}).values())
        self.pool.shutdown(wait=False, cancel_futures=True)
        for process in processes:
            process.terminate()
        for process in processes:
            process.join(5)


def import_ray() -> Any:
    """The ``ray`` module, or a one-line error naming the extra that installs it."""
    try:
        import ray
    except ImportError:
        from engine_core.plugins import install_hint

        raise EngineError(
            f"--backend ray needs Ray, which is not installed: {install_hint('engine-plugin-optimize', 'ray')}"
        ) from None
    return ray


def check_address(address: str) -> None:
    """A Ray address (``ray://host:port`` or ``host:port``) must accept a connection."""
    if address in ("auto", "local"):
        return
    parts = urlsplit(address if "://" in address else f"ray://{address}")
    try:
        host, port = parts.hostname, parts.port
    except ValueError:
        host, port = None, None
    if not host or not port:
        raise EngineError(f"--address {address}: expected ray://host:port (Ray Client) or host:port")
    try:
        with socket.create_connection((host, port), timeout=CONNECT_TIMEOUT):
            pass
    except OSError as err:
        reason = err.strerror or type(err).__name__
        raise EngineError(f"--address {address}: no Ray cluster answers there ({reason})") from None


class RayBackend:
    """Trials as Ray tasks: on the cluster at ``address``, or on a local one started here."""

    def __init__(self, setup: TrialSetup, jobs: int | None = None, address: str | None = None) -> None:
        ray = self.ray = import_ray()
        self.started = False
        if not ray.is_initialized():
            if address is not None:
                check_address(address)
            try:
                ray.init(
                    address=address,
                    num_cpus=(jobs or cores()) if address is None else None,
                    include_dashboard=False,
                    logging_level=logging.WARNING,
                    log_to_driver=False,
                )
            except Exception as err:  # noqa: BLE001 - Ray raises many kinds; one line for all
                where = f"--address {address}" if address else "a local Ray cluster"
                first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
                raise EngineError(f"{where}: Ray did not start: {first}") from err
            self.started = True
        self.slots = jobs or max(1, int(ray.cluster_resources().get("CPU", 1)))
        self.key = uuid.uuid4().hex
        self.holder = [ray.put(setup)]
        self.task = ray.remote(num_cpus=1, max_retries=0)(run_on_ray)
        self.pending: dict[Any, TrialSpec] = {}

    def submit(self, spec: TrialSpec) -> None:
        self.pending[self.task.remote(self.key, self.holder, spec)] = spec

    def results(self) -> list[TrialOutcome]:
        ray = self.ray
        ready, rest = ray.wait(list(self.pending), num_returns=1)
        if rest:
            more, _ = ray.wait(rest, num_returns=len(rest), timeout=0)
            ready += more
        out = []
        for ref in ready:
            spec = self.pending.pop(ref)
            try:
                out.append(ray.get(ref))
            except Exception as err:  # noqa: BLE001 - a lost worker or node fails this trial
                first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
                out.append(TrialOutcome(spec.key, None, f"Ray task failed: {first}", 0.0))
        return out

    def close(self, *, cancel: bool = False) -> None:
        if cancel:
            for ref in self.pending:
                self.ray.cancel(ref, force=True)
        self.pending.clear()
        if self.started:
            self.ray.shutdown()


def make_backend(kind: str, setup: TrialSetup, jobs: int | None, address: str | None) -> Backend:
    if kind == "ray":
        return RayBackend(setup, jobs, address)
    return LocalBackend(setup, jobs)


__all__ = ["Backend", "LocalBackend", "RayBackend", "check_address", "import_ray", "make_backend"]
