"""One side of one benchmark, in a process of its own.

:func:`serve` runs in the worker process (forked by :mod:`rudp.bench.procs`).
Its spec says which ``measure`` module's ``ROLES`` to run, which ``role``
(``"server"`` or ``"client"``), ``impl``, ``loop``, ``params``, and ``cpu`` to
pin the process to one CPU.  The worker sends ``{"ready": true, ...}`` (a server
adds its port), then answers each command with one message, until ``stop``.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import importlib
import json
import os
import resource
import sys
import traceback
from multiprocessing.connection import Connection
from typing import Any, Protocol


class Role(Protocol):
    """What a measure module provides for each side (its ``ROLES`` dict)."""

    async def start(self) -> dict[str, Any]: ...

    async def handle(self, cmd: str, message: dict[str, Any]) -> dict[str, Any]: ...


class RoleFactory(Protocol):
    def __call__(self, impl: str, params: dict[str, Any]) -> Role: ...


def serve(spec_json: str, conn: Connection) -> None:
    """The worker process's whole life; it ends with ``os._exit``."""
    spec: dict[str, Any] = json.loads(spec_json)
    os.dup2(2, 1)  # a stray print must not mix with the parent's Markdown
    _raise_file_limit()
    cpu = spec.get("cpu")
    if cpu is not None and hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {int(cpu)})
    try:
        module = importlib.import_module(f"rudp.bench.{spec['measure']}")
        factory: RoleFactory = module.ROLES[spec["role"]]
        role = factory(spec["impl"], spec.get("params", {}))
        # Never closed: closing would cancel every connection's task first.
        runner = asyncio.Runner(loop_factory=_loop_factory(spec["loop"]))
        runner.run(_serve_commands(role, conn))
    except BaseException as exc:  # the parent must hear of it, whatever it is
        _send(conn, {"error": _describe(exc)})
    finally:
        # Skip the teardown of thousands of connections (aioquic's would wait out
        # the closing period of each): the parent is done with us.
        sys.stderr.flush()
        os._exit(0)


def _loop_factory(name: str) -> Any:
    if name == "uvloop":
        import uvloop

        return uvloop.new_event_loop
    return asyncio.new_event_loop


def _raise_file_limit() -> None:
    """Thousands of client sockets need thousands of descriptors."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or soft < hard:
        target = 1 << 20 if hard == resource.RLIM_INFINITY else hard
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))


def _send(conn: Connection, message: dict[str, Any]) -> None:
    with contextlib.suppress(OSError):
        conn.send_bytes(json.dumps(message).encode())


def _describe(exc: BaseException) -> str:
    """The exception and where it was raised, for the parent's report."""
    traceback.print_exc()
    frames = traceback.extract_tb(exc.__traceback__)
    where = f" at {frames[-1].filename}:{frames[-1].lineno}" if frames else ""
    return f"{exc!r}{where}"


async def _serve_commands(role: Role, conn: Connection) -> None:
    loop = asyncio.get_running_loop()
    commands: asyncio.Queue[bytes | None] = asyncio.Queue()

    def readable() -> None:
        try:
            commands.put_nowait(conn.recv_bytes())
        except (EOFError, OSError):
            loop.remove_reader(conn.fileno())
            commands.put_nowait(None)

    ready = await role.start()
    _send(conn, {"ready": True, **ready})
    gc.collect()
    loop.add_reader(conn.fileno(), readable)
    while (raw := await commands.get()) is not None:
        message = json.loads(raw)
        cmd = message.pop("cmd")
        if cmd == "stop":
            break
        try:
            answer = await role.handle(cmd, message)
        except Exception as exc:
            answer = {"error": f"{cmd} failed: {_describe(exc)}"}
        _send(conn, answer)
