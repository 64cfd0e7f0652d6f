"""A TLS echo server and its client in one script, over rudp.

The same code as with asyncio's TLS over kernel TCP: ``ssl=`` on
``rudp.start_server`` and ``rudp.open_connection``.  It runs on uvloop as well
(``--uvloop``), where asyncio's own TLS machinery would refuse a rudp transport:
rudp layers TLS itself.  Then the same connection is made in plain text and
upgraded mid-stream with ``writer.start_tls()`` (STARTTLS).

The certificate is a throwaway, self-signed one for 127.0.0.1, made at run time
with the ``openssl`` command (or the ``cryptography`` package when there is no
``openssl``).

    python examples/tls_echo.py [--uvloop]
"""

import asyncio
import datetime
import functools
import ipaddress
import shutil
import ssl
import subprocess
import sys
import tempfile
from pathlib import Path

import rudp

HOST = "127.0.0.1"


def make_certificate(folder):
    """A self-signed certificate and its key for HOST, as two PEM files."""
    cert, key = folder / "cert.pem", folder / "key.pem"
    openssl = shutil.which("openssl")
    if openssl is not None:
        subprocess.run(
            [openssl, "req", "-x509", "-nodes", "-days", "1",
             "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
             "-keyout", str(key), "-out", str(cert),
             "-subj", "/CN=rudp example", "-addext", f"subjectAltName=IP:{HOST}"],
            check=True,
            capture_output=True,
        )  # fmt: skip
        return cert, key
    try:
        from cryptography import x509
        from cryptography.hazmat.primitives import hashes, serialization
        from cryptography.hazmat.primitives.asymmetric import ec
        from cryptography.x509.oid import NameOID
    except ImportError:
        sys.exit("this example needs the openssl command or the cryptography package")
    private_key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "rudp example")])
    now = datetime.datetime.now(datetime.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(private_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address(HOST))]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(private_key, hashes.SHA256())
    )
    cert.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key.write_bytes(
        private_key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert, key


async def handle_echo(server_context, reader, writer):
    """Echo each line; a plain-text "STARTTLS" line upgrades the connection first."""
    tls = writer.get_extra_info("sslcontext") is not None
    while line := await reader.readline():
        if line == b"STARTTLS\n" and not tls:
            writer.write(b"GO AHEAD\n")
            await writer.start_tls(server_context)
            tls = True
            continue
        writer.write(line)
        await writer.drain()
    writer.close()
    await writer.wait_closed()


async def tls_client(port, client_context):
    reader, writer = await rudp.open_connection(HOST, port, ssl=client_context)
    print("TLS from the start:", writer.get_extra_info("ssl_object").version(),
          writer.get_extra_info("cipher")[0])  # fmt: skip
    for message in (b"Hello over TLS\n", b"over TCP, over UDP\n"):
        writer.write(message)
        print("echoed:", await reader.readline())
    writer.close()
    await writer.wait_closed()


async def starttls_client(port, client_context):
    reader, writer = await rudp.open_connection(HOST, port)
    writer.write(b"in the clear\n")
    print("plain:  ", await reader.readline())
    writer.write(b"STARTTLS\n")
    print("server: ", await reader.readline())
    await writer.start_tls(client_context, server_hostname=HOST)
    print("upgraded:", writer.get_extra_info("ssl_object").version())
    writer.write(b"now encrypted\n")
    print("echoed: ", await reader.readline())
    writer.close()
    await writer.wait_closed()


async def main(folder):
    cert, key = make_certificate(folder)
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_context.load_cert_chain(cert, key)
    client_context = ssl.create_default_context(cafile=str(cert))
    handle = functools.partial(handle_echo, server_context)

    print("loop:", type(asyncio.get_running_loop()).__module__)
    tls_server = await rudp.start_server(handle, HOST, 0, ssl=server_context)
    plain_server = await rudp.start_server(handle, HOST, 0)  # until STARTTLS
    async with tls_server, plain_server:
        await tls_client(tls_server.sockets[0].getsockname()[1], client_context)
        await starttls_client(plain_server.sockets[0].getsockname()[1], client_context)


if __name__ == "__main__":
    with tempfile.TemporaryDirectory() as folder:
        if "--uvloop" in sys.argv[1:]:
            import uvloop

            uvloop.run(main(Path(folder)))
        else:
            asyncio.run(main(Path(folder)))
