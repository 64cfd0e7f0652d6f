"""TCP echo client from the asyncio streams documentation, on rudp.

The only changes from the asyncio example are ``import rudp``, ``rudp.open_connection``
and the ``--port`` option.
Start ``python examples/echo_server.py`` first (``--port`` as the server's).
"""

import argparse
import asyncio

import rudp


async def tcp_echo_client(message, port):
    reader, writer = await rudp.open_connection("127.0.0.1", port)

    print(f"Send: {message!r}")
    writer.write(message.encode())
    await writer.drain()

    data = await reader.read(100)
    print(f"Received: {data.decode()!r}")

    print("Close the connection")
    writer.close()
    await writer.wait_closed()


parser = argparse.ArgumentParser()
parser.add_argument("--port", type=int, default=8888)
asyncio.run(tcp_echo_client("Hello World!", parser.parse_args().port))
