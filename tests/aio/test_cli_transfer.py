"""``rudp send`` / ``rudp recv``: a file crosses intact, damage and mistakes end in one line.

The commands run as subprocesses, as a user runs them; the tests that play a
misbehaving peer speak the transfer protocol (rudp.transfer) in-process.
"""

from __future__ import annotations

import asyncio
import hashlib
import io
import json
import os
import re
import select
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

import rudp
from rudp.cli import main
from rudp.transfer import Progress, format_size

ROOT = Path(__file__).resolve().parents[2]
TIMEOUT = 20
ENV = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}


def _rudp(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "rudp", *args],
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        env=ENV,
        cwd=cwd,
    )


class Receiver:
    """A running ``rudp recv``: its port, then (after ``wait``) its exit and output."""

    def __init__(self, process: subprocess.Popen[str], port: int) -> None:
        self.process, self.port = process, port
        self.returncode: int | None = None
        self.stdout = self.stderr = ""

    def wait(self) -> None:
        out, err = self.process.communicate(timeout=TIMEOUT)
        self.returncode, self.stdout, self.stderr = self.process.returncode, out, err


@contextmanager
def _receiver(*args: str, cwd: Path) -> Iterator[Receiver]:
    process = subprocess.Popen(
        [sys.executable, "-m", "rudp", "recv", "0", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=ENV,
        cwd=cwd,
    )
    try:
        assert process.stdout is not None
        ready, _, _ = select.select([process.stdout], [], [], TIMEOUT)
        assert ready, "rudp recv printed nothing"
        line = process.stdout.readline()
        match = re.fullmatch(r"rudp recv listening on 127\.0\.0\.1:(\d+)\n", line)
        assert match, (line, process.stderr and process.stderr.read())
        yield Receiver(process, int(match[1]))
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()


def _random_file(path: Path, size: int) -> str:
    data = os.urandom(size)
    path.write_bytes(data)
    return hashlib.sha256(data).hexdigest()


def test_send_and_recv_a_2mb_file(tmp_path: Path) -> None:
    source = tmp_path / "data.bin"
    sha256 = _random_file(source, 2 * 1024 * 1024)
    out = tmp_path / "out"
    out.mkdir()
    with _receiver("--output", str(out), cwd=tmp_path) as receiver:
        sent = _rudp("send", str(source), "127.0.0.1", str(receiver.port), cwd=tmp_path)
        receiver.wait()
    assert sent.returncode == 0, sent.stderr
    assert receiver.returncode == 0, receiver.stderr
    # Not a terminal: no progress bar, nothing on stderr.
    assert sent.stderr == "" and receiver.stderr == ""
    sent_lines = sent.stdout.splitlines()
    assert re.fullmatch(
        rf"sent data\.bin to 127\.0\.0\.1:{receiver.port}: "
        r"2\.1 MB in [\d.]+ s \([\d.]+ [kMG]?B/s\)",
        sent_lines[0],
    ), sent_lines
    assert sent_lines[1:] == [f"sha256 {sha256} verified by the receiver"]
    received_lines = receiver.stdout.splitlines()
    assert re.fullmatch(
        r"received data\.bin from 127\.0\.0\.1:\d+: 2\.1 MB in [\d.]+ s \([\d.]+ [kMG]?B/s\) "
        r"-> .*out/data\.bin",
        received_lines[0],
    ), received_lines
    assert received_lines[1:] == [f"sha256 {sha256} OK"]
    assert (out / "data.bin").read_bytes() == source.read_bytes()
    assert sorted(p.name for p in out.iterdir()) == ["data.bin"]  # no .part left behind


def test_recv_will_not_replace_a_file_without_force(tmp_path: Path) -> None:
    source = tmp_path / "new.bin"
    _random_file(source, 1000)
    target = tmp_path / "kept.bin"
    target.write_bytes(b"precious")
    with _receiver("-o", str(target), cwd=tmp_path) as receiver:
        sent = _rudp("send", str(source), "127.0.0.1", str(receiver.port), cwd=tmp_path)
        receiver.wait()
    assert sent.returncode == 1 and receiver.returncode == 1
    refusal = f"{target} already exists (use --force to replace it)"
    assert sent.stderr == f"rudp: error: the receiver refused the file: {refusal}\n"
    assert receiver.stderr == f"rudp: error: {refusal}\n"
    assert target.read_bytes() == b"precious"

    with _receiver("-o", str(target), "--force", cwd=tmp_path) as receiver:
        sent = _rudp("send", str(source), "127.0.0.1", str(receiver.port), cwd=tmp_path)
        receiver.wait()
    assert sent.returncode == 0 and receiver.returncode == 0, (sent.stderr, receiver.stderr)
    assert target.read_bytes() == source.read_bytes()


async def _speak(port: int, header: dict[str, object], payload: bytes) -> list[dict[str, object]]:
    """Play the sender by hand: the receiver's answers, as decoded lines."""
    async with asyncio.timeout(TIMEOUT):
        reader, writer = await rudp.open_connection("127.0.0.1", port)
        writer.write(json.dumps(header).encode() + b"\n")
        answers = [json.loads(await reader.readline())]
        if answers[0].get("ok"):
            writer.write(payload)
            writer.write_eof()
            answers += [json.loads(line) for line in (await reader.read()).splitlines()]
        writer.close()
        await writer.wait_closed()
    return answers


async def test_recv_rejects_a_file_whose_sha256_does_not_match(tmp_path: Path) -> None:
    payload = os.urandom(50_000)
    wrong = hashlib.sha256(b"something else").hexdigest()
    header = {"rudp-file": 1, "name": "damaged.bin", "size": len(payload), "sha256": wrong}
    with _receiver(cwd=tmp_path) as receiver:
        answers = await _speak(receiver.port, header, payload)
        receiver.wait()
    mismatch = (
        f"sha256 mismatch for damaged.bin: expected {wrong}, "
        f"got {hashlib.sha256(payload).hexdigest()}"
    )
    assert answers == [{"ok": True}, {"ok": False, "error": mismatch}]
    assert receiver.returncode == 1
    assert receiver.stderr == f"rudp: error: {mismatch}\n"
    assert list(tmp_path.iterdir()) == []  # neither the file nor its .part


async def test_recv_keeps_only_the_last_component_of_the_name(tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    payload = b"x" * 1000
    sha256 = hashlib.sha256(payload).hexdigest()
    header = {"rudp-file": 1, "name": "../../escape.bin", "size": 1000, "sha256": sha256}
    with _receiver("-o", str(out), cwd=tmp_path) as receiver:
        answers = await _speak(receiver.port, header, payload)
        receiver.wait()
    assert answers == [{"ok": True}, {"ok": True, "sha256": sha256}]
    assert receiver.returncode == 0, receiver.stderr
    assert (out / "escape.bin").read_bytes() == payload
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]


async def test_send_reports_a_receiver_that_finds_damage(tmp_path: Path) -> None:
    source = tmp_path / "file.bin"
    _random_file(source, 10_000)

    async def damaged(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readline()
        writer.write(b'{"ok": true}\n')
        await reader.read()
        writer.write(b'{"ok": false, "error": "sha256 mismatch for file.bin"}\n')
        writer.close()

    server = await rudp.start_server(damaged, "127.0.0.1", 0)
    async with asyncio.timeout(TIMEOUT), server:
        port = server.sockets[0].getsockname()[1]
        sent = await asyncio.to_thread(_rudp, "send", str(source), "127.0.0.1", str(port))
    assert sent.returncode == 1
    rejected = "the receiver rejected the file: sha256 mismatch for file.bin"
    assert sent.stderr == f"rudp: error: {rejected}\n"


async def test_ctrl_c_on_recv_resets_and_removes_the_partial_file(tmp_path: Path) -> None:
    header = {"rudp-file": 1, "name": "big.bin", "size": 10**6, "sha256": "0" * 64}
    with _receiver(cwd=tmp_path) as receiver:
        async with asyncio.timeout(TIMEOUT):
            reader, writer = await rudp.open_connection("127.0.0.1", receiver.port)
            writer.write(json.dumps(header).encode() + b"\n")
            assert json.loads(await reader.readline()) == {"ok": True}
            assert (tmp_path / "big.bin.part").exists()
            writer.write(b"x" * 1000)  # then nothing more: the transfer hangs
            await writer.drain()
            receiver.process.send_signal(signal.SIGINT)
            with pytest.raises(ConnectionResetError):
                await reader.read()
            writer.close()
        await asyncio.to_thread(receiver.wait)
    assert receiver.returncode == 130 and receiver.stderr == ""
    assert list(tmp_path.iterdir()) == []


async def test_ctrl_c_on_send_ends_the_stream_short(tmp_path: Path) -> None:
    source = tmp_path / "big.bin"
    _random_file(source, 2 * 1024 * 1024)
    first_bytes = asyncio.Event()
    received = 0

    async def receiver(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal received
        await reader.readline()
        writer.write(b'{"ok": true}\n')
        received = len(await reader.read(1000))
        first_bytes.set()
        while data := await reader.read(65536):
            received += len(data)
        writer.close()

    server = await rudp.start_server(receiver, "127.0.0.1", 0)
    async with asyncio.timeout(TIMEOUT), server:
        port = server.sockets[0].getsockname()[1]
        command = [sys.executable, "-m", "rudp", "send", str(source), "127.0.0.1", str(port)]
        sender = subprocess.Popen(command, stderr=subprocess.PIPE, text=True, env=ENV)
        try:
            await first_bytes.wait()
            sender.send_signal(signal.SIGINT)
            _, stderr = await asyncio.to_thread(sender.communicate, timeout=TIMEOUT)
        finally:
            if sender.poll() is None:
                sender.kill()
    assert sender.returncode == 130 and stderr == ""
    assert 0 < received < 2 * 1024 * 1024


def test_send_a_missing_file(tmp_path: Path) -> None:
    result = _rudp("send", "missing.bin", "127.0.0.1", "9", cwd=tmp_path)
    assert result.returncode == 1
    assert result.stderr == "rudp: error: cannot read missing.bin: no such file or directory\n"


def test_send_to_a_refusing_or_silent_peer(tmp_path: Path) -> None:
    source = tmp_path / "f.bin"
    _random_file(source, 100)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as silent:
        silent.bind(("127.0.0.1", 0))
        port = silent.getsockname()[1]
        result = _rudp("send", "f.bin", "127.0.0.1", str(port), "--timeout", "0.3", cwd=tmp_path)
    assert result.returncode == 1
    assert result.stderr == (
        f"rudp: error: cannot send f.bin to 127.0.0.1:{port}: no answer within 0.3 s\n"
    )
    result = _rudp("send", "f.bin", "127.0.0.1", str(port), cwd=tmp_path)  # nothing there now
    assert result.returncode == 1
    refused = f"rudp: error: cannot send f.bin to 127.0.0.1:{port}: connection refused\n"
    assert result.stderr == refused


def test_recv_on_a_busy_port(tmp_path: Path) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as taken:
        taken.bind(("127.0.0.1", 0))
        port = taken.getsockname()[1]
        result = _rudp("recv", str(port), cwd=tmp_path)
    assert result.returncode == 1
    assert result.stderr == (
        f"rudp: error: cannot listen on 127.0.0.1:{port}: address already in use\n"
    )


def test_recv_gives_up_and_checks_its_output_first(tmp_path: Path) -> None:
    result = _rudp("recv", "0", "--timeout", "0.2", cwd=tmp_path)
    assert result.returncode == 1
    assert result.stderr == "rudp: error: no sender within 0.2 s\n"
    missing = tmp_path / "no" / "such.bin"
    result = _rudp("recv", "0", "-o", str(missing), cwd=tmp_path)
    assert result.returncode == 1
    assert result.stderr == f"rudp: error: cannot write to {missing}: no such directory\n"


def test_bad_arguments_exit_2_with_one_error_line(capsys: pytest.CaptureFixture[str]) -> None:
    # In-process: argparse decides before anything starts.
    for args, message in (
        (["send", "f", "127.0.0.1", "http"], "argument PORT: not a number: 'http'"),
        (["send", "f", "127.0.0.1", "0"], "argument PORT: port must be within 1..65535"),
        (["recv", "70000"], "argument PORT: port must be within 0..65535"),
        (["recv", "0", "--segment-size", "10"], "--segment-size: value must be within 64..65507"),
        (["send", "f"], "the following arguments are required: HOST, PORT"),
    ):
        with pytest.raises(SystemExit) as exit:
            main(args)
        assert exit.value.code == 2, args
        assert capsys.readouterr().err.splitlines()[-1].endswith(message)


def test_help(capsys: pytest.CaptureFixture[str]) -> None:
    for command in ("send", "recv"):
        with pytest.raises(SystemExit) as exit:
            main([command, "--help"])
        assert exit.value.code == 0
        help_text = capsys.readouterr().out
        assert "exit status" in help_text and "--segment-size" in help_text


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_progress_bar_redraws_at_most_every_interval() -> None:
    now = [0.0]
    terminal = _Terminal()
    progress = Progress("f ->", 1000, terminal, interval=0.1, clock=lambda: now[0])
    for step in range(1, 101):  # 100 updates over 0.99 s
        progress.update(step * 10)
        now[0] += 0.01
    progress.finish()
    frames = terminal.getvalue().split("\r")[1:]
    assert 10 <= len(frames) <= 12  # the first update, one per 0.1 s, the final one
    assert frames[0].startswith("f -> [..............................]   1% 10 B / 1.0 kB")
    assert frames[-1].startswith("f -> [##############################] 100% 1.0 kB / 1.0 kB")
    assert frames[-1].endswith("\n")

    silent = Progress("f ->", 1000, None)
    silent.update(500)
    silent.finish()  # nothing to write to, nothing raised


def test_format_size() -> None:
    assert format_size(999) == "999 B"
    assert format_size(2 * 1024 * 1024) == "2.1 MB"
    assert format_size(10.2e6) == "10.2 MB"
    assert format_size(3e12) == "3000.0 GB"
