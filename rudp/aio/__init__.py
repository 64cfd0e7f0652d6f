"""The asyncio adapter: the only part of rudp that does I/O."""

from .api import create_connection, create_server
from .endpoint import Endpoint
from .server import Server
from .streams import open_connection, start_server
from .transport import RudpTransport

__all__ = [
    "Endpoint",
    "RudpTransport",
    "Server",
    "create_connection",
    "create_server",
    "open_connection",
    "start_server",
]
