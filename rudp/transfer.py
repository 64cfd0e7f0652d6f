"""File transfer over one rudp stream: what ``rudp send`` and ``rudp recv`` speak.

The sender connects and writes one header line; the receiver answers whether it
will take the file; then come the bytes and the sender's half-close (EOF); the
receiver hashes what arrived and answers with its verdict before closing::

    sender   {"rudp-file": 1, "name": "photo.jpg", "size": 2097152, "sha256": "9f86..."}\\n
    receiver {"ok": true}\\n                      (or {"ok": false, "error": "..."}\\n, close)
    sender   <size bytes>, EOF
    receiver {"ok": true, "sha256": "9f86..."}\\n  (or {"ok": false, "error": "..."}\\n)

The go-ahead costs one round trip and spares sending a whole file to a receiver
that would refuse it.  The receiver writes into ``<target>.part`` and renames it
only once the size and SHA-256 match, so a failed transfer never leaves a file
that looks complete.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

import rudp

PROTOCOL_VERSION = 1
CHUNK_SIZE = 64 * 1024
# How long a sender about to exit waits for the FIN exchange to complete.
FINISH_TIMEOUT = 1.0
MAX_LINE = 4096  # header and verdict lines; a longer one is not ours

__all__ = ["Progress", "Receiver", "TransferError", "TransferReport", "format_size", "send_file"]


class TransferError(Exception):
    """The transfer failed for a reason worth one line to the user (not a network error)."""


@dataclass(frozen=True, slots=True)
class TransferReport:
    """One finished, verified transfer."""

    name: str
    size: int
    sha256: str
    seconds: float
    peer: str
    path: Path | None = None  # where the receiver stored it

    @property
    def rate(self) -> float:
        """Bytes per second, end to end (header to verdict)."""
        return self.size / self.seconds if self.seconds > 0 else float("inf")


def format_size(nbytes: float) -> str:
    """``2.1 MB``: decimal units, as network throughput is counted."""
    for unit in ("B", "kB", "MB", "GB"):
        if abs(nbytes) < 1000 or unit == "GB":
            return f"{nbytes:.0f} {unit}" if unit == "B" else f"{nbytes:.1f} {unit}"
        nbytes /= 1000
    raise AssertionError("unreachable")


class Progress:
    """A one-line textual bar, redrawn in place at most once per ``interval``.

    ``stream=None`` disables it (not a terminal, or ``--quiet``): callers need
    no test of their own.
    """

    WIDTH = 30

    def __init__(
        self,
        label: str,
        total: int,
        stream: TextIO | None,
        *,
        interval: float = 0.1,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._label = label
        self._total = total
        self._stream = stream
        self._interval = interval
        self._clock = clock
        self._started = clock()
        self._drawn_at: float | None = None
        self._done = 0
        self._shown_width = 0

    def update(self, done: int) -> None:
        self._done = done
        now = self._clock()
        if self._drawn_at is None or now - self._drawn_at >= self._interval:
            self._draw(now)

    def finish(self) -> None:
        """Draw the final state and end the line, so what follows starts clean."""
        if self._stream is not None and self._drawn_at is not None:
            self._draw(self._clock())
            self._stream.write("\n")
            self._stream.flush()

    def _draw(self, now: float) -> None:
        self._drawn_at = now
        if self._stream is None:
            return
        fraction = min(1.0, self._done / self._total) if self._total else 1.0
        filled = round(fraction * self.WIDTH)
        elapsed = now - self._started
        # A rate over the first instants says more about buffers than the path.
        rate = f"{format_size(self._done / elapsed)}/s" if elapsed >= 0.5 else ""
        line = (
            f"{self._label} [{'#' * filled}{'.' * (self.WIDTH - filled)}] {fraction:4.0%} "
            f"{format_size(self._done)} / {format_size(self._total)}  {rate}"
        )
        padding = " " * max(0, self._shown_width - len(line))
        self._shown_width = len(line)
        self._stream.write(f"\r{line}{padding}")
        self._stream.flush()


def _reason(exc: OSError) -> str:
    return exc.strerror.lower() if exc.strerror else str(exc)


def _file_digest(path: Path) -> tuple[int, str]:
    with path.open("rb") as file:
        digest = hashlib.file_digest(file, "sha256")
        return file.tell(), digest.hexdigest()


def _encode_line(message: dict[str, Any]) -> bytes:
    return json.dumps(message).encode() + b"\n"


async def _read_message(reader: asyncio.StreamReader, what: str) -> dict[str, Any]:
    """One JSON line; TransferError when it is missing or not ours."""
    try:
        line = await reader.readuntil(b"\n")
    except asyncio.IncompleteReadError:
        raise TransferError(f"the peer closed the connection without {what}") from None
    except asyncio.LimitOverrunError:
        raise TransferError(f"the peer sent no valid {what} (line too long)") from None
    try:
        message = json.loads(line)
    except ValueError:
        raise TransferError(f"the peer sent no valid {what}") from None
    if not isinstance(message, dict):
        raise TransferError(f"the peer sent no valid {what}")
    return message


def _check_answer(message: dict[str, Any], failure: str) -> None:
    if message.get("ok") is not True:
        reason = message.get("error", "no reason given")
        raise TransferError(f"the receiver {failure} the file: {reason}")


async def send_file(
    path: Path,
    host: str,
    port: int,
    *,
    config: rudp.Config | None = None,
    connect_timeout: float | None = None,
    progress_stream: TextIO | None = None,
) -> TransferReport:
    """Send ``path`` to a ``rudp recv`` at ``host:port`` and return the verified report.

    TransferError when the file cannot be read or the receiver refuses it or
    finds it damaged; OSError (refused, reset, timed out) from the network."""
    try:
        size, sha256 = _file_digest(path)
    except OSError as exc:
        raise TransferError(f"cannot read {path}: {_reason(exc)}") from None
    loop = asyncio.get_running_loop()
    async with asyncio.timeout(connect_timeout):
        reader, writer = await rudp.open_connection(host, port, config=config, limit=MAX_LINE)
    started = loop.time()
    peer = f"{host}:{port}"
    try:
        header = {"rudp-file": PROTOCOL_VERSION, "name": path.name, "size": size, "sha256": sha256}
        writer.write(_encode_line(header))
        _check_answer(await _read_message(reader, "a go-ahead"), "refused")
        progress = Progress(f"{path.name} ->", size, progress_stream)
        sent = 0
        try:
            with path.open("rb") as file:
                while sent < size and (chunk := file.read(min(CHUNK_SIZE, size - sent))):
                    writer.write(chunk)
                    await writer.drain()
                    sent += len(chunk)
                    progress.update(sent)
        finally:
            progress.finish()  # also before an error, which then starts a line of its own
        if sent != size:
            raise TransferError(f"{path} shrank while being sent")
        writer.write_eof()
        verdict = await _read_message(reader, "a verdict")
        _check_answer(verdict, "rejected")
        if verdict.get("sha256") != sha256:
            raise TransferError(f"the receiver reports sha256 {verdict.get('sha256')}")
        seconds = loop.time() - started
    except asyncio.CancelledError:
        # Interrupted (Ctrl-C): end the stream short, which the receiver reports as
        # such.  Not a reset first: an RST beyond the receiver's RCV.NXT draws an
        # RFC 5961 (3.2) challenge ACK that nobody answers once we have exited.
        writer.close()
        try:
            async with asyncio.timeout(1.0):
                await writer.wait_closed()
        except (OSError, TimeoutError):
            writer.transport.abort()
        await finish(writer)
        raise
    finally:
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()
    await finish(writer)
    return TransferReport(path.name, size, sha256, seconds, peer)


async def finish(writer: asyncio.StreamWriter) -> None:
    """Before the process exits, let the FIN exchange complete, which a kernel
    socket would finish after the exit but a rudp connection cannot: else a peer
    whose FIN comes after ours stays in LAST-ACK, unanswered (bounded wait)."""
    wait = getattr(writer, "wait_finished", None)
    if wait is not None:
        with contextlib.suppress(TimeoutError, OSError):
            async with asyncio.timeout(FINISH_TIMEOUT):
                await wait()


def _safe_name(name: object) -> str | None:
    """The last component of a name the peer chose, or None if it names nothing."""
    if not isinstance(name, str) or "\0" in name:
        return None
    base = name.replace("\\", "/").rsplit("/", 1)[-1]
    return None if base in ("", ".", "..") else base


class Receiver:
    """Takes one file from the first sender to connect; ``result`` then holds the
    report, or the TransferError that ended it.  Later senders are turned away.

    ``output``: a directory to store the file in under the sender's name (the
    current directory when None), or the file path itself.
    """

    def __init__(
        self,
        output: Path | None = None,
        *,
        force: bool = False,
        progress_stream: TextIO | None = None,
    ) -> None:
        self._output = output
        self._force = force
        self._progress_stream = progress_stream
        self._writer: asyncio.StreamWriter | None = None  # of the transfer under way
        self._cancelled = False
        self.connected = asyncio.Event()
        self.result: asyncio.Future[TransferReport] = asyncio.get_running_loop().create_future()
        if output is not None and not output.is_dir() and not output.parent.is_dir():
            raise TransferError(f"cannot write to {output}: no such directory")

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """The server's client_connected_cb."""
        if self._cancelled:
            writer.transport.abort()
            return
        if self._writer is not None:
            writer.write(_encode_line({"ok": False, "error": "busy with another transfer"}))
            writer.close()
            return
        self._writer = writer
        self.connected.set()
        host, port = writer.get_extra_info("peername")[:2]
        try:
            report = await self._receive(reader, writer, f"{host}:{port}")
        except TransferError as exc:
            self._finish(exc)
        except OSError as exc:
            self._finish(TransferError(f"connection from {host}:{port}: {_reason(exc)}"))
        except asyncio.CancelledError:
            # The task ends here either way; re-raising would only have Python
            # 3.11's StreamReaderProtocol log the cancelled task as an error.
            writer.transport.abort()
            self._finish(TransferError("interrupted"))
        else:
            self._finish(report)
        finally:
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()

    def cancel(self) -> None:
        """Stop the transfer under way, or the one about to start: the sender
        sees a reset, the handler an early end of the data, and removes the
        partial file.  ``result`` is then left alone."""
        self._cancelled = True
        if self._writer is not None:
            self._writer.transport.abort()

    def _finish(self, outcome: TransferReport | TransferError) -> None:
        if self._cancelled or self.result.done():  # nobody is waiting for it any more
            return
        if isinstance(outcome, TransferError):
            self.result.set_exception(outcome)
        else:
            self.result.set_result(outcome)

    def _target(self, name: str) -> Path:
        if self._output is None:
            return Path(name)
        return self._output / name if self._output.is_dir() else self._output

    async def _refuse(self, writer: asyncio.StreamWriter, error: str) -> TransferError:
        writer.write(_encode_line({"ok": False, "error": error}))
        with contextlib.suppress(OSError):
            await writer.drain()
        return TransferError(error)

    async def _receive(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, peer: str
    ) -> TransferReport:
        loop = asyncio.get_running_loop()
        started = loop.time()
        header = await _read_message(reader, "a file header")
        name = _safe_name(header.get("name"))
        size, sha256 = header.get("size"), header.get("sha256")
        if header.get("rudp-file") != PROTOCOL_VERSION:
            raise await self._refuse(writer, "unsupported protocol version")
        if name is None or not isinstance(size, int) or size < 0 or not isinstance(sha256, str):
            raise await self._refuse(writer, "malformed file header")
        target = self._target(name)
        if target.exists() and not self._force:
            raise await self._refuse(writer, f"{target} already exists (use --force to replace it)")
        partial = target.with_name(target.name + ".part")
        try:
            file = partial.open("wb")
        except OSError as exc:
            raise await self._refuse(writer, f"cannot write {partial}: {_reason(exc)}") from None
        writer.write(_encode_line({"ok": True}))
        progress = Progress(f"{name} <-", size, self._progress_stream)
        digest = hashlib.sha256()
        received = 0
        try:
            with file:
                try:
                    while received < size:
                        chunk = await reader.read(min(CHUNK_SIZE, size - received))
                        if not chunk:
                            raise TransferError(
                                f"{peer} closed the connection after {received} of {size} bytes"
                            )
                        file.write(chunk)
                        digest.update(chunk)
                        received += len(chunk)
                        progress.update(received)
                finally:
                    progress.finish()
            if digest.hexdigest() != sha256:
                raise await self._refuse(
                    writer,
                    f"sha256 mismatch for {name}: expected {sha256}, got {digest.hexdigest()}",
                )
            try:
                os.replace(partial, target)
            except OSError as exc:
                raise await self._refuse(writer, f"cannot write {target}: {_reason(exc)}") from None
        except BaseException:
            partial.unlink(missing_ok=True)
            raise
        writer.write(_encode_line({"ok": True, "sha256": sha256}))
        await writer.drain()
        return TransferReport(name, size, sha256, loop.time() - started, peer, target)
