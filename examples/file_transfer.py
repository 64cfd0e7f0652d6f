"""Send a file over rudp and check that it arrived intact (SHA-256).

A sender and a receiver in one script.  The sender writes one header line (the
size and the SHA-256 of the file), then the bytes; the receiver stores them,
hashes what came and answers ``OK`` or ``MISMATCH``.  The file is made of
random bytes for the occasion.  (``rudp send`` and ``rudp recv`` do this from
the command line, with a progress bar.)

    python examples/file_transfer.py [--size BYTES]
"""

import argparse
import asyncio
import functools
import hashlib
import os
import sys
import tempfile
from pathlib import Path

import rudp

HOST = "127.0.0.1"
CHUNK = 64 * 1024


def sha256_of(path):
    with open(path, "rb") as file:
        return hashlib.file_digest(file, "sha256").hexdigest()


async def receive(folder, received, reader, writer):
    size, expected = (await reader.readline()).decode().split()
    digest = hashlib.sha256()
    remaining = int(size)
    with open(folder / "received.bin", "wb") as file:
        # Chunk by chunk, as they arrive: the file need not fit in memory.
        while remaining:
            chunk = await reader.read(min(CHUNK, remaining))
            if not chunk:
                raise ConnectionError("the sender stopped early")
            file.write(chunk)
            digest.update(chunk)
            remaining -= len(chunk)
    verdict = "OK" if digest.hexdigest() == expected else "MISMATCH"
    print(f"receiver: {size} bytes, sha256 {digest.hexdigest()}: {verdict}")
    writer.write(f"{verdict}\n".encode())
    await writer.drain()
    writer.close()
    await writer.wait_closed()
    received.set_result(verdict)


async def send(path, port):
    reader, writer = await rudp.open_connection(HOST, port)
    writer.write(f"{path.stat().st_size} {sha256_of(path)}\n".encode())
    with open(path, "rb") as file:
        while chunk := file.read(CHUNK):
            writer.write(chunk)
            await writer.drain()  # wait while the send buffer is full
    verdict = (await reader.readline()).decode().strip()
    writer.close()
    await writer.wait_closed()
    return verdict


async def main(size):
    loop = asyncio.get_running_loop()
    with tempfile.TemporaryDirectory() as name:
        folder = Path(name)
        original = folder / "original.bin"
        original.write_bytes(os.urandom(size))
        print(f"sender: {size} bytes, sha256 {sha256_of(original)}")

        received = loop.create_future()
        handler = functools.partial(receive, folder, received)
        server = await rudp.start_server(handler, HOST, 0)
        async with server:
            started = loop.time()
            verdict = await send(original, server.sockets[0].getsockname()[1])
            seconds = loop.time() - started
            await received
        print(f"sent in {seconds:.2f} s ({size / seconds / 1e6:.1f} MB/s), receiver says {verdict}")
        return verdict == "OK" and sha256_of(folder / "received.bin") == sha256_of(original)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description="Send a random file over rudp, check sha256.")
    parser.add_argument("--size", type=int, default=1_000_000, help="bytes (default 1000000)")
    intact = asyncio.run(main(parser.parse_args().size))
    print("the file arrived intact" if intact else "the file was damaged")
    sys.exit(0 if intact else 1)
