"""rudp: real TCP (RFC 9293) carried in UDP datagrams, behind asyncio's TCP API.

``rudp.open_connection`` / ``rudp.start_server`` and ``rudp.create_connection`` /
``rudp.create_server`` take the arguments of their asyncio namesakes (plus
``config=rudp.Config(...)``) and give back asyncio's own streams, transports
and servers' behaviour, TLS (``ssl=``) included, on any loop.  ``rudp.start_tls``
is ``loop.start_tls`` for any loop, and the streams' writers (``rudp.StreamWriter``,
an ``asyncio.StreamWriter``) have a ``start_tls`` that uses it.
"""

import sys

from .aio.api import create_connection, create_server
from .aio.server import Server
from .aio.streams import StreamWriter, open_connection, start_server
from .aio.tls import start_tls
from .core import errors
from .core.config import Config
from .core.errors import LocalProtocolError

# ``import rudp.errors`` works too: the module is rudp.core.errors.
sys.modules[__name__ + ".errors"] = errors

__version__ = "0.1.0"

__all__ = [
    "Config",
    "LocalProtocolError",
    "Server",
    "StreamWriter",
    "__version__",
    "create_connection",
    "create_server",
    "errors",
    "open_connection",
    "start_server",
    "start_tls",
]
