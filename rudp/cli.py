"""The ``rudp`` command: a demo, an echo server and client, file transfer and the benchmarks.

Exit status: 0 on success; 1 when the network says no (the port is taken, the
peer refuses, resets or does not answer in time, the host does not resolve) or
a file transfer fails (missing file, file refused or damaged), with one line
``rudp: error: ...`` on stderr; 2 for a command-line mistake (as argparse
does); 130 when interrupted with Ctrl-C.
"""

from __future__ import annotations

import argparse
import asyncio
import errno
import logging
import os
import socket
import sys
from collections.abc import Callable, Coroutine, Sequence
from pathlib import Path
from typing import Any, TextIO

import rudp
from rudp import transfer
from rudp.bench import suite as bench_suite
from rudp.core import congestion
from rudp.observe.log import configure_console_logging

EXIT_OK = 0
EXIT_NETWORK_ERROR = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8888  # the port of asyncio's echo examples

_EPILOG = (
    "exit status: 0 success; 1 network error (port in use, connection refused, "
    "reset or timed out); 2 usage error; 130 interrupted"
)


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    if args.command == "bench":
        return _bench(args)
    if args.verbose:
        configure_console_logging(logging.INFO)
    try:
        return int(_run(args.run(args)))
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED
    except OSError as exc:
        print(f"rudp: error: {args.doing(args)}: {_describe(exc, args)}", file=sys.stderr)
        return EXIT_NETWORK_ERROR


def _run(main: Coroutine[Any, Any, int]) -> int:
    """Run on uvloop when it is installed (several times asyncio's datagram rate
    here); ``RUDP_LOOP=asyncio`` keeps the default loop."""
    if os.environ.get("RUDP_LOOP", "auto") != "asyncio":
        try:
            import uvloop
        except ImportError:
            pass
        else:
            return uvloop.run(main)
    return asyncio.run(main)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="rudp",
        description="TCP (RFC 9293) carried in UDP datagrams: demo, echo, file transfer and "
        "benchmark tools.",
        epilog=_EPILOG,
    )
    parser.add_argument("--version", action="version", version=f"rudp {rudp.__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    demo = commands.add_parser(
        "demo",
        help="run an echo server and a client in this process and narrate the connection",
        description="Start an echo server on 127.0.0.1 (ephemeral port), connect a client, "
        "echo a message and close, printing the handshake, the data and the close "
        "as they happen.",
        epilog=_EPILOG,
    )
    demo.add_argument("--message", default="Hello, rudp!", help="text to echo")
    demo.add_argument("--timeout", type=float, default=10.0, help="give up after this many s")
    demo.set_defaults(run=_demo, doing=lambda a: "demo failed", verbose=False)

    server = commands.add_parser(
        "echo-server",
        help="serve an echo service until interrupted",
        description="Echo back whatever each client sends, until the client closes.",
        epilog=_EPILOG,
    )
    server.add_argument("--host", default=DEFAULT_HOST, help=f"address (default {DEFAULT_HOST})")
    server.add_argument(
        "--port",
        type=int,
        default=DEFAULT_PORT,
        help=f"UDP port, 0 for any (default {DEFAULT_PORT})",
    )
    server.add_argument("-v", "--verbose", action="store_true", help="log connection events")
    server.set_defaults(run=_echo_server, doing=lambda a: f"cannot listen on {a.host}:{a.port}")

    client = commands.add_parser(
        "echo-client",
        help="send a message to an echo server and print the answer",
        description="Connect, send the message, half-close, print what comes back.",
        epilog=_EPILOG,
    )
    client.add_argument("--host", default=DEFAULT_HOST, help=f"server (default {DEFAULT_HOST})")
    client.add_argument(
        "--port", type=int, default=DEFAULT_PORT, help=f"server port (default {DEFAULT_PORT})"
    )
    client.add_argument("--message", default="Hello World!", help="text to send")
    client.add_argument(
        "--timeout", type=float, default=10.0, help="give up after this many seconds (default 10)"
    )
    client.add_argument("-v", "--verbose", action="store_true", help="log connection events")
    client.set_defaults(run=_echo_client, doing=lambda a: f"cannot echo via {a.host}:{a.port}")
    _add_transfer_commands(commands)

    bench = commands.add_parser(
        "bench",
        help="run the benchmark suite: rudp against kernel TCP, raw UDP and aioquic",
        description="Bulk transfer, echo latency, connection rate and scale, each with rudp, "
        "asyncio streams over kernel TCP, raw asyncio UDP and aioquic (when installed), on "
        "the default loop and uvloop, client and server in separate processes on 127.0.0.1. "
        "Prints Markdown tables; --out-dir DIR also writes DIR/latest.json and DIR/latest.md. "
        "The full default sizes take a long while: try --quick first.",
        epilog="exit status: 0 every figure measured; 1 some figure failed; 2 usage error; "
        "130 interrupted",
    )
    bench_suite.add_arguments(bench)
    bench.set_defaults(verbose=False)
    return parser


def _bench(args: argparse.Namespace) -> int:
    """The suite steers worker processes from plain synchronous code: no event loop here."""
    try:
        return bench_suite.run_from_args(args)
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED


def _describe(exc: OSError, args: argparse.Namespace) -> str:
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused"
    if isinstance(exc, ConnectionResetError):
        return "connection reset by peer"
    if isinstance(exc, TimeoutError):
        timeout = getattr(args, "timeout", None)
        return f"no answer within {timeout:g} s" if timeout else "connection timed out"
    if isinstance(exc, socket.gaierror):
        return f"cannot resolve host ({exc.strerror})"
    if exc.errno == errno.EADDRINUSE:
        return "address already in use"
    return exc.strerror.lower() if exc.strerror else str(exc)


async def _echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    peer = writer.get_extra_info("peername")
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    except ConnectionError as exc:
        print(f"{peer[0]}:{peer[1]}: {exc}", file=sys.stderr)
    finally:
        writer.close()


async def _echo_server(args: argparse.Namespace) -> int:
    server = await rudp.start_server(_echo, args.host, args.port)
    async with server:
        host, port = server.sockets[0].getsockname()[:2]
        print(f"rudp echo server listening on {host}:{port}", flush=True)
        await server.serve_forever()
    return EXIT_OK


async def _echo_client(args: argparse.Namespace) -> int:
    async with asyncio.timeout(args.timeout):
        reader, writer = await rudp.open_connection(args.host, args.port)
        try:
            writer.write(args.message.encode())
            writer.write_eof()
            data = await reader.read()
        finally:
            writer.close()
        await writer.wait_closed()
        await transfer.finish(writer)
    print(data.decode(errors="replace"), flush=True)
    return EXIT_OK


async def _demo(args: argparse.Namespace) -> int:
    configure_console_logging(logging.INFO, sys.stdout)

    def say(text: str) -> None:
        print(f"   demo   {text}", flush=True)

    async def echo_once(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        data = await reader.read(65536)
        say(f"server got {data.decode(errors='replace')!r} and echoes it")
        writer.write(data)
        await writer.drain()
        await reader.read()  # until the client closes
        writer.close()

    async with asyncio.timeout(args.timeout):
        server = await rudp.start_server(echo_once, "127.0.0.1", 0)
        host, port = server.sockets[0].getsockname()[:2]
        say(f"echo server listening on {host}:{port}")
        async with server:
            reader, writer = await rudp.open_connection(host, port)
            message = args.message.encode()
            say(f"client sends {args.message!r}")
            writer.write(message)
            echoed = await reader.readexactly(len(message))
            say(f"client received the echo {echoed.decode(errors='replace')!r}")
            say("client closes")
            writer.close()
            await writer.wait_closed()
            server.close()
    say("done")
    return EXIT_OK


# ---- send / recv: file transfer (the protocol is in rudp.transfer) ----

_TRANSFER_EPILOG = (
    "exit status: 0 the file arrived and its sha256 matched; 1 the transfer failed (missing "
    "file, port in use, connection refused, reset or timed out, file refused or damaged); "
    "2 usage error; 130 interrupted"
)


def _add_transfer_commands(
    commands: argparse._SubParsersAction[argparse.ArgumentParser],
) -> None:
    send = commands.add_parser(
        "send",
        help="send a file to a 'rudp recv', checked by sha256",
        description="Send FILE to the 'rudp recv' listening on HOST:PORT, with a progress bar "
        "on stderr (on a terminal), then report the throughput and the receiver's sha256 check.",
        epilog=_TRANSFER_EPILOG,
    )
    send.add_argument("file", metavar="FILE", type=Path, help="the file to send")
    send.add_argument("host", metavar="HOST", help="the receiver's address")
    send.add_argument("port", metavar="PORT", type=_port_number(1), help="the receiver's port")
    send.add_argument(
        "--timeout",
        type=float,
        default=10.0,
        metavar="SECONDS",
        help="give up connecting after this long (default %(default)s)",
    )
    _add_transfer_options(send)
    send.set_defaults(run=_send, doing=lambda a: f"cannot send {a.file} to {a.host}:{a.port}")

    recv = commands.add_parser(
        "recv",
        help="receive one file from a 'rudp send', checked by sha256",
        description="Listen on PORT, take one file from the first sender, store it once its "
        "size and sha256 match (under the sender's file name, in the current directory "
        "unless --output says otherwise), report and exit.",
        epilog=_TRANSFER_EPILOG,
    )
    recv.add_argument("port", metavar="PORT", type=_port_number(0), help="UDP port, 0 for any")
    recv.add_argument(
        "--host",
        default=DEFAULT_HOST,
        help=f"address to listen on (default {DEFAULT_HOST}; 0.0.0.0 for every interface)",
    )
    recv.add_argument(
        "-o",
        "--output",
        type=Path,
        metavar="PATH",
        help="directory to store the file in, or the file's path (default: .)",
    )
    recv.add_argument("--force", action="store_true", help="replace an existing file")
    recv.add_argument(
        "--timeout",
        type=float,
        metavar="SECONDS",
        help="give up when no sender comes within this long (default: wait)",
    )
    _add_transfer_options(recv)
    recv.set_defaults(run=_recv, doing=lambda a: f"cannot listen on {a.host}:{a.port}")


def _add_transfer_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    parser.add_argument("-v", "--verbose", action="store_true", help="log connection events")
    settings = parser.add_argument_group("connection settings (rudp.Config)")
    defaults = rudp.Config()
    settings.add_argument(
        "--segment-size",
        type=_int_within(64, 65507),
        default=defaults.max_segment_size,
        metavar="BYTES",
        help="largest segment put in one datagram, in bytes (default %(default)s)",
    )
    settings.add_argument(
        "--receive-buffer",
        type=_int_within(1, 2**30),
        default=None,
        metavar="BYTES",
        help="a fixed receive buffer, the largest window, in bytes, as SO_RCVBUF "
        f"(default: {defaults.receive_buffer} growing up to {defaults.receive_buffer_max} "
        "while the application reads as fast as data comes)",
    )
    settings.add_argument(
        "--congestion-control",
        choices=congestion.available(),
        default=defaults.congestion_control,
        help="algorithm: %(choices)s (default %(default)s)",
        metavar="NAME",
    )
    settings.add_argument("--pacing", action="store_true", help="pace segments over the RTT")
    settings.add_argument("--pcap", metavar="FILE", help="record every segment to a pcap file")


def _port_number(lowest: int) -> Callable[[str], int]:
    return _int_within(lowest, 65535, "port")


def _int_within(lowest: int, highest: int, what: str = "value") -> Callable[[str], int]:
    def parse(text: str) -> int:
        try:
            number = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
        if not lowest <= number <= highest:
            raise argparse.ArgumentTypeError(f"{what} must be within {lowest}..{highest}")
        return number

    return parse


def _transfer_config(args: argparse.Namespace) -> rudp.Config:
    # RFC 1122 (4.2.3.6) keepalive, so that a receiver waiting for data (or a
    # sender waiting for the verdict) notices a peer that died: a silent peer
    # is probed after 10 s and given up after 3 unanswered probes 5 s apart.
    fixed = args.receive_buffer
    buffers = {} if fixed is None else {"receive_buffer": fixed, "receive_buffer_max": fixed}
    return rudp.Config(
        max_segment_size=args.segment_size,
        **buffers,
        congestion_control=args.congestion_control,
        pacing=args.pacing,
        pcap_path=args.pcap,
        keepalive=True,
        keepalive_idle=10.0,
        keepalive_interval=5.0,
        keepalive_probes=3,
    )


def _progress_stream(args: argparse.Namespace) -> TextIO | None:
    return None if args.quiet or not sys.stderr.isatty() else sys.stderr


def _summary(report: transfer.TransferReport) -> str:
    return (
        f"{transfer.format_size(report.size)} in {report.seconds:.2f} s "
        f"({transfer.format_size(report.rate)}/s)"
    )


async def _send(args: argparse.Namespace) -> int:
    try:
        report = await transfer.send_file(
            args.file,
            args.host,
            args.port,
            config=_transfer_config(args),
            connect_timeout=args.timeout,
            progress_stream=_progress_stream(args),
        )
    except transfer.TransferError as exc:
        print(f"rudp: error: {exc}", file=sys.stderr)
        return EXIT_NETWORK_ERROR
    print(f"sent {report.name} to {report.peer}: {_summary(report)}")
    print(f"sha256 {report.sha256} verified by the receiver", flush=True)
    return EXIT_OK


async def _recv(args: argparse.Namespace) -> int:
    try:
        receiver = transfer.Receiver(
            args.output, force=args.force, progress_stream=_progress_stream(args)
        )
    except transfer.TransferError as exc:
        print(f"rudp: error: {exc}", file=sys.stderr)
        return EXIT_NETWORK_ERROR
    server = await rudp.start_server(
        receiver.handle, args.host, args.port, config=_transfer_config(args)
    )
    async with server:
        host, port = server.sockets[0].getsockname()[:2]
        print(f"rudp recv listening on {host}:{port}", flush=True)
        try:
            async with asyncio.timeout(args.timeout):
                await receiver.connected.wait()
            report = await receiver.result
        except asyncio.CancelledError:
            receiver.cancel()  # Ctrl-C: end the transfer rather than wait for it to finish
            raise
        except TimeoutError:
            print(f"rudp: error: no sender within {args.timeout:g} s", file=sys.stderr)
            return EXIT_NETWORK_ERROR
        except transfer.TransferError as exc:
            print(f"rudp: error: {exc}", file=sys.stderr)
            return EXIT_NETWORK_ERROR
    print(f"received {report.name} from {report.peer}: {_summary(report)} -> {report.path}")
    print(f"sha256 {report.sha256} OK", flush=True)
    return EXIT_OK
