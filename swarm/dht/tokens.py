"""Announce tokens (BEP 5): proof that an ``announce_peer`` comes from the address we sent a
``get_peers`` answer to.

A token is a keyed BLAKE2b hash of the querier's IP address under a secret of ours. The
secret changes every :data:`ROTATE_EVERY` seconds (five minutes) and the one before it is
still accepted, so a token stays good for five to ten minutes, as in BitTorrent's own
implementation that BEP 5 describes. Pure: the secrets come from the caller's
``random.Random`` and time from ``now``.
"""

from __future__ import annotations

import hashlib
import hmac
import random

__all__ = ["ROTATE_EVERY", "TOKEN_SIZE", "Tokens"]

ROTATE_EVERY = 5 * 60.0
TOKEN_SIZE = 8
_SECRET_SIZE = 16


class Tokens:
    """Issues and checks announce tokens for IP addresses (the port plays no part: a NAT may
    change it between the get_peers and the announce)."""

    def __init__(self, rng: random.Random, now: float, every: float = ROTATE_EVERY) -> None:
        self._rng = rng
        self._every = every
        self._current = rng.randbytes(_SECRET_SIZE)
        self._previous = rng.randbytes(_SECRET_SIZE)
        self._since = now

    def _rotate(self, now: float) -> None:
        if now - self._since >= 2 * self._every:
            self._previous = self._rng.randbytes(_SECRET_SIZE)  # both secrets have run out
            self._current = self._rng.randbytes(_SECRET_SIZE)
            self._since = now
        elif now - self._since >= self._every:
            self._previous, self._current = self._current, self._rng.randbytes(_SECRET_SIZE)
            self._since += self._every

    @staticmethod
    def _hash(secret: bytes, ip: str) -> bytes:
        return hashlib.blake2b(ip.encode(), key=secret, digest_size=TOKEN_SIZE).digest()

    def token_for(self, ip: str, now: float) -> bytes:
        """The token to hand *ip* in a get_peers answer now."""
        self._rotate(now)
        return self._hash(self._current, ip)

    def valid(self, token: bytes, ip: str, now: float) -> bool:
        """Whether *token* was issued to *ip* under the current secret or the one before."""
        self._rotate(now)
        return any(
            hmac.compare_digest(token, self._hash(secret, ip))
            for secret in (self._current, self._previous)
        )
