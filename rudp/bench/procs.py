"""The parent's side of a worker process: start it, send commands, read answers.

Workers are forked by a multiprocessing *forkserver* that has already imported
rudp, the measures and uvloop: a separate, single-threaded process per worker
that starts in milliseconds instead of re-importing everything (a benchmark run
starts hundreds).  Parent and worker exchange JSON messages over a pipe:
``{"ready": true, ...}`` once the worker has set up, then one answer per command
(``{"error": "..."}`` when it failed).  Every wait has a timeout, and a wedged
worker is killed, not waited on.
"""

from __future__ import annotations

import contextlib
import json
import multiprocessing
import multiprocessing.connection
from collections.abc import Sequence
from typing import Any

# What the forkserver imports once, so that workers start with it loaded (the
# forkserver skips what is not installed).
_PRELOAD = [
    "rudp.bench.worker",
    "rudp.bench.bulk",
    "rudp.bench.latency",
    "rudp.bench.connrate",
    "rudp.bench.scale",
    "rudp.bench.lossy",
    "uvloop",
    "aioquic.asyncio.client",
    "aioquic.asyncio.server",
    "cryptography.x509",
]

_context: Any = None


def _forkserver() -> Any:
    global _context
    if _context is None:
        _context = multiprocessing.get_context("forkserver")
        _context.set_forkserver_preload(_PRELOAD)
    return _context


class WorkerError(Exception):
    """A worker failed, went quiet or died."""


class Worker:
    """One child process running :func:`rudp.bench.worker.serve` with ``spec``."""

    def __init__(self, spec: dict[str, Any], label: str) -> None:
        from .worker import serve

        self.label = label
        context = _forkserver()
        self._conn, child_end = context.Pipe()
        self._proc = context.Process(
            target=serve, args=(json.dumps(spec), child_end), name=label, daemon=True
        )
        self._proc.start()
        child_end.close()
        self.ready: dict[str, Any] | None = None

    def wait_ready(self, timeout: float) -> dict[str, Any]:
        if self.ready is None:
            self.ready = self.receive(timeout)
        return self.ready

    def send(self, cmd: str, **fields: Any) -> None:
        try:
            self._conn.send_bytes(json.dumps({"cmd": cmd, **fields}).encode())
        except (OSError, ValueError) as exc:
            raise WorkerError(f"{self.label}: cannot send {cmd!r} ({exc})") from None

    def receive(self, timeout: float) -> dict[str, Any]:
        try:
            if not self._conn.poll(timeout):
                raise WorkerError(f"{self.label}: no answer within {timeout:g} s")
            answer: dict[str, Any] = json.loads(self._conn.recv_bytes())
        except (EOFError, OSError):
            self._proc.join(1.0)
            raise WorkerError(f"{self.label}: exited with status {self._proc.exitcode}") from None
        if "error" in answer:
            raise WorkerError(f"{self.label}: {answer['error']}")
        return answer

    def ask(self, cmd: str, timeout: float, **fields: Any) -> dict[str, Any]:
        self.send(cmd, **fields)
        return self.receive(timeout)

    @property
    def alive(self) -> bool:
        return bool(self._proc.is_alive())

    def stop(self, timeout: float = 5.0) -> None:
        """Ask the worker to exit; kill it if it does not."""
        if self._proc.is_alive():
            with contextlib.suppress(WorkerError):
                self.send("stop")
            self._proc.join(timeout)
        self.kill()
        self._conn.close()

    def kill(self) -> None:
        if self._proc.is_alive():
            self._proc.kill()
            self._proc.join()


def stop_all(workers: Sequence[Worker]) -> None:
    """Stop several workers, letting them wind down together."""
    for worker in workers:
        if worker.alive:
            with contextlib.suppress(WorkerError):
                worker.send("stop")
    for worker in workers:
        worker.stop()
