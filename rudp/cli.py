"""The ``rudp`` command: a demo, an echo server and an echo client.

Exit status: 0 on success; 1 when the network says no (the port is taken, the
peer refuses, resets or does not answer in time, the host does not resolve),
with one line ``rudp: error: ...`` on stderr; 2 for a command-line mistake (as
argparse does); 130 when interrupted with Ctrl-C.
"""

from __future__ import annotations

import argparse
import asyncio
import errno
import logging
import socket
import sys
from collections.abc import Sequence

import rudp
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
    if args.verbose:
        configure_console_logging(logging.INFO)
    try:
        return int(asyncio.run(args.run(args)))
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED
    except OSError as exc:
        print(f"rudp: error: {args.doing(args)}: {_describe(exc, args)}", file=sys.stderr)
        return EXIT_NETWORK_ERROR


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="rudp",
        description="TCP (RFC 9293) carried in UDP datagrams: demo and echo tools.",
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
    return parser


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
