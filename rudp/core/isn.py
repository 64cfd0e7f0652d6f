"""Initial sequence numbers per RFC 6528: ISN = M + F(4-tuple, secret).

M is a clock ticking every 4 microseconds (RFC 9293 3.4.1); F is a keyed hash, so
an off-path attacker cannot predict the ISN of someone else's connection, while
one 4-tuple's successive incarnations still get increasing numbers.
"""

from __future__ import annotations

import hashlib
import os
import secrets
from collections.abc import Hashable

MASK = 0xFFFFFFFF
TICKS_PER_SECOND = 250_000

# os.urandom's 32-bit words for random_isn, drawn 256 at a time: one system call
# per 256 connections.  A forked child draws its own, never its parent's.
_random_words: list[int] = []
if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_random_words.clear)


def random_isn() -> int:
    """An unpredictable ISN, for a connection whose owner has no 4-tuple to hash."""
    try:
        return _random_words.pop()
    except IndexError:
        _random_words.extend(memoryview(os.urandom(1024)).cast("I"))
        return _random_words.pop()


class IsnSource:
    __slots__ = ("_secret",)

    def __init__(self, secret: bytes | None = None) -> None:
        self._secret = secret if secret is not None else secrets.token_bytes(16)

    def __call__(self, now: float, local: Hashable, remote: Hashable) -> int:
        digest = hashlib.blake2b(
            repr((local, remote)).encode(), key=self._secret, digest_size=4
        ).digest()
        return (int(now * TICKS_PER_SECOND) + int.from_bytes(digest, "big")) & MASK
