"""TCP echo server from the asyncio streams documentation, on rudp.

The only changes from the asyncio example are ``import rudp``, ``rudp.start_server``
and the ``--port`` option.
Run it, then ``python examples/echo_client.py`` in another terminal
(``--port`` chooses another port than 8888 for both; 0 lets the server pick).
"""

import argparse
import asyncio

import rudp


async def handle_echo(reader, writer):
    data = await reader.read(100)
    message = data.decode()
    addr = writer.get_extra_info("peername")

    print(f"Received {message!r} from {addr!r}")

    print(f"Send: {message!r}")
    writer.write(data)
    await writer.drain()

    print("Close the connection")
    writer.close()
    await writer.wait_closed()


async def main(port):
    server = await rudp.start_server(handle_echo, "127.0.0.1", port)

    addrs = ", ".join(str(sock.getsockname()) for sock in server.sockets)
    print(f"Serving on {addrs}")

    async with server:
        await server.serve_forever()


parser = argparse.ArgumentParser()
parser.add_argument("--port", type=int, default=8888)
asyncio.run(main(parser.parse_args().port))
