"""TCP echo server and client written with asyncio's Protocol API, on rudp.

The two protocols are those of the asyncio documentation ("TCP Echo Server"
and "TCP Echo Client" in Transports and Protocols), unchanged.  Only the calls
that make the transports differ: ``loop.create_server(...)`` becomes
``rudp.create_server(...)`` and ``loop.create_connection(...)`` becomes
``rudp.create_connection(...)``, with the same arguments.

    python examples/echo_protocol.py [--port PORT] [--message TEXT]
"""

import argparse
import asyncio

import rudp


class EchoServerProtocol(asyncio.Protocol):
    def connection_made(self, transport):
        peername = transport.get_extra_info("peername")
        print(f"Server: connection from {peername}")
        self.transport = transport

    def data_received(self, data):
        message = data.decode()
        print(f"Server: data received: {message!r}")

        print(f"Server: send: {message!r}")
        self.transport.write(data)

        print("Server: close the client socket")
        self.transport.close()


class EchoClientProtocol(asyncio.Protocol):
    def __init__(self, message, on_con_lost):
        self.message = message
        self.on_con_lost = on_con_lost

    def connection_made(self, transport):
        transport.write(self.message.encode())
        print(f"Client: data sent: {self.message!r}")

    def data_received(self, data):
        print(f"Client: data received: {data.decode()!r}")

    def connection_lost(self, exc):
        print("Client: the server closed the connection")
        self.on_con_lost.set_result(True)


async def main(port, message):
    loop = asyncio.get_running_loop()

    # asyncio: server = await loop.create_server(EchoServerProtocol, "127.0.0.1", port)
    server = await rudp.create_server(EchoServerProtocol, "127.0.0.1", port)
    port = server.sockets[0].getsockname()[1]  # the one picked, with --port 0
    print(f"Serving on 127.0.0.1:{port}")

    async with server:
        # Resolved by the client's connection_lost(), once the server has closed.
        on_con_lost = loop.create_future()

        # asyncio: transport, _ = await loop.create_connection(...)
        transport, _ = await rudp.create_connection(
            lambda: EchoClientProtocol(message, on_con_lost), "127.0.0.1", port
        )
        try:
            await on_con_lost
        finally:
            transport.close()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description="Protocol-style echo server and client.")
    parser.add_argument("--port", type=int, default=0, help="server port (default: any free)")
    parser.add_argument("--message", default="Hello World!")
    args = parser.parse_args()
    asyncio.run(main(args.port, args.message))
