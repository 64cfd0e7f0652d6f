"""A key-value store server and its client, written for asyncio, ported to rudp.

The program was written for kernel TCP with asyncio's streams.  Moving it to
rudp took one changed line, the import:

    -from asyncio import open_connection, start_server
    +from rudp import open_connection, start_server

Everything else is asyncio's own: StreamReader, StreamWriter, ``drain()``,
``wait_closed()``, the server's ``async with``.  The protocol is one command per
line (``SET key value``, ``GET key``, ``DEL key``, ``KEYS``), one answer line each.

    python examples/ported_from_asyncio.py
"""

import asyncio

from rudp import open_connection, start_server


class KeyValueStore:
    def __init__(self):
        self.data = {}

    async def handle(self, reader, writer):
        # One task per client, like any asyncio server: readline() to EOF.
        while line := await reader.readline():
            command, _, arguments = line.decode().strip().partition(" ")
            writer.write(self.execute(command.upper(), arguments).encode() + b"\n")
            await writer.drain()
        writer.close()  # the client has seen our answers: nothing left to wait for

    def execute(self, command, arguments):
        key, _, value = arguments.partition(" ")
        if command == "SET" and key and value:
            self.data[key] = value
            return "OK"
        if command == "GET" and key:
            return self.data.get(key, "(nil)")
        if command == "DEL" and key:
            return "1" if self.data.pop(key, None) is not None else "0"
        if command == "KEYS":
            return " ".join(sorted(self.data))
        return f"ERR unknown command {command!r}"


async def run_client(port, commands):
    reader, writer = await open_connection("127.0.0.1", port)
    for command in commands:
        writer.write(command.encode() + b"\n")
        reply = await reader.readline()
        print(f"{command:<24} -> {reply.decode().strip()}")
    writer.write_eof()  # done: the server reads EOF and closes its side...
    await reader.read()  # ...which we read as EOF in turn
    writer.close()
    await writer.wait_closed()


async def main():
    store = KeyValueStore()
    server = await start_server(store.handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    async with server:
        # Two clients, one after the other: the store outlives connections.
        await run_client(port, ["SET greeting hello world", "SET answer 42", "GET greeting"])
        await run_client(port, ["GET answer", "DEL greeting", "GET greeting", "KEYS", "PING"])


if __name__ == "__main__":
    asyncio.run(main())
