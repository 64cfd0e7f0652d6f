"""A chat server over rudp: each line a client sends goes to every connected client.

A client's first line is its name; then each line it sends reaches everybody,
itself included, as ``name: text``; joins and leaves are announced.

    python examples/chat.py server [--port 8889]
    python examples/chat.py client [--port 8889] [--name NAME]   (type lines; Ctrl-D leaves)
    python examples/chat.py --demo    (a server and three scripted clients, then exit)
"""

import argparse
import asyncio
import sys

import rudp

HOST = "127.0.0.1"


class ChatServer:
    def __init__(self):
        self.writers = set()  # one StreamWriter per connected client

    async def handle(self, reader, writer):
        name = (await reader.readline()).decode().strip() or "anonymous"
        self.writers.add(writer)
        await self.broadcast(f"* {name} joined")
        try:
            while line := await reader.readline():
                await self.broadcast(f"{name}: {line.decode().rstrip()}")
        except ConnectionError:
            pass  # a client that vanished has left all the same
        finally:
            self.writers.discard(writer)
            await self.broadcast(f"* {name} left")
            writer.close()

    async def broadcast(self, text):
        data = text.encode() + b"\n"
        writers = list(self.writers)
        for writer in writers:
            writer.write(data)
        # Wait for the slowest reader, so a flood cannot fill our memory, but do
        # not let one broken connection stop the others.
        await asyncio.gather(*(w.drain() for w in writers), return_exceptions=True)


async def serve(port):
    server = await rudp.start_server(ChatServer().handle, HOST, port)
    print(f"chat server on {HOST}:{server.sockets[0].getsockname()[1]}", flush=True)
    async with server:
        await server.serve_forever()


async def client(port, name):
    reader, writer = await rudp.open_connection(HOST, port)
    writer.write(f"{name}\n".encode())

    async def show_incoming():
        while line := await reader.readline():
            print(line.decode(), end="", flush=True)

    incoming = asyncio.create_task(show_incoming())
    # Reading the terminal blocks: a thread does it, the loop keeps running.
    while line := await asyncio.to_thread(sys.stdin.readline):
        writer.write(line.encode())
        await writer.drain()
    writer.write_eof()  # we leave; the server then closes, which ends show_incoming()
    await incoming
    writer.close()
    await writer.wait_closed()


class DemoClient:
    """A scripted chat client that prints what it receives as ``[name] line``."""

    def __init__(self, name, reader, writer):
        self.name, self.reader, self.writer = name, reader, writer
        self.seen = []
        self.new_line = asyncio.Event()
        self.listener = asyncio.create_task(self.listen())

    @classmethod
    async def join(cls, name, port):
        reader, writer = await rudp.open_connection(HOST, port)
        client = cls(name, reader, writer)
        writer.write(f"{name}\n".encode())
        await client.wait_for(f"* {name} joined")
        return client

    async def listen(self):
        while line := await self.reader.readline():
            text = line.decode().rstrip("\n")
            print(f"[{self.name}] {text}")
            self.seen.append(text)
            self.new_line.set()

    async def wait_for(self, text):
        while text not in self.seen:
            self.new_line.clear()
            await self.new_line.wait()

    async def say(self, text):
        self.writer.write(f"{text}\n".encode())
        await self.wait_for(f"{self.name}: {text}")  # our own line comes back too

    async def leave(self):
        self.writer.write_eof()
        await self.listener  # until the server has closed our connection
        self.writer.close()
        await self.writer.wait_closed()


async def demo():
    server = await rudp.start_server(ChatServer().handle, HOST, 0)
    port = server.sockets[0].getsockname()[1]
    print(f"chat server on {HOST}:{port}")
    async with server, asyncio.timeout(20):
        # One step at a time, so every run prints the same conversation.
        clients = [await DemoClient.join(name, port) for name in ("alice", "bob", "carol")]
        lines = ("Hello, everyone!", "Hi alice.", "Hello over TCP over UDP.")
        for speaker, text in zip(clients, lines, strict=True):
            await speaker.say(text)
        for leaver in clients:
            await leaver.leave()
    print("demo done")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description="A line-based chat over rudp.")
    parser.add_argument("mode", nargs="?", choices=["server", "client"])
    parser.add_argument("--port", type=int, default=8889)
    parser.add_argument("--name", default="guest")
    parser.add_argument("--demo", action="store_true", help="run a scripted chat and exit")
    args = parser.parse_args()
    if args.demo:
        asyncio.run(demo())
    elif args.mode == "server":
        asyncio.run(serve(args.port))
    elif args.mode == "client":
        asyncio.run(client(args.port, args.name))
    else:
        parser.error("choose server, client or --demo")
