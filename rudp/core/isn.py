"""Initial sequence numbers per RFC 6528: ISN = M + F(4-tuple, secret).

M is a clock ticking every 4 microseconds (RFC 9293 3.4.1); F is a keyed hash, so
an off-path attacker cannot predict the ISN of someone else's connection, while
one 4-tuple's successive incarnations still get increasing numbers.
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Hashable

MASK = 0xFFFFFFFF
TICKS_PER_SECOND = 250_000


class IsnSource:
    __slots__ = ("_secret",)

    def __init__(self, secret: bytes | None = None) -> None:
        self._secret = secret if secret is not None else secrets.token_bytes(16)

    def __call__(self, now: float, local: Hashable, remote: Hashable) -> int:
        digest = hashlib.blake2b(
            repr((local, remote)).encode(), key=self._secret, digest_size=4
        ).digest()
        return (int(now * TICKS_PER_SECOND) + int.from_bytes(digest, "big")) & MASK
