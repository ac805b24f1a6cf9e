"""MSE/PE (Message Stream Encryption), the handshake for both roles, sans I/O.

The Vuze/Azureus spec as libtorrent speaks it (A dials, B listens)::

    1 A->B: Ya, PadA
    2 B->A: Yb, PadB
    3 A->B: HASH('req1', S), HASH('req2', SKEY) xor HASH('req3', S),
            ENCRYPT(VC, crypto_provide, len(PadC), PadC, len(IA)), ENCRYPT(IA)
    4 B->A: ENCRYPT(VC, crypto_select, len(PadD), PadD), ENCRYPT2(payload)
    5 A->B: ENCRYPT2(payload)

:class:`Initiator` and :class:`Receiver` are fed whatever bytes arrived (``receive``) and
return a :class:`Step`: bytes to send, and once the handshake is through a :class:`Handshaken`
with the :class:`~swarm.wire.mse_crypto.MseStream` that encrypts and decrypts the rest (RC4, or
plaintext passed through), the payload bytes that came after the handshake (already
decrypted), and on B's side the torrent's info-hash and A's IA (the BitTorrent handshake
inside). Bad input raises :class:`~swarm.wire.mse_crypto.MseError` and nothing else; neither
side buffers more than the spec's largest handshake (B: 96 + 512 + 20 + 20 + 14 + 512 + 2 + 68
bytes; A: 96 + 512 + 8 + 6 + 512). IA is capped at 68 bytes (a BitTorrent handshake), as
libtorrent caps it. The arithmetic and ciphers, and which library does them, are in
:mod:`swarm.wire.mse_crypto`.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Final

from swarm.wire.mse_crypto import (
    CRYPTO_PLAINTEXT,
    CRYPTO_RC4,
    KEY_LEN,
    KNOWN_METHODS,
    MAX_PAD,
    VC,
    MseError,
    MseStream,
    Rc4,
    key_a,
    key_b,
    new_private_key,
    public_key,
    req1,
    req2,
    req3,
    shared_secret,
    xor,
)

MAX_IA: Final = 68

RandBytes = Callable[[int], bytes]
#: Given HASH('req2', SKEY) from a dialer, the info-hash we serve that it names, or None.
SkeyLookup = Callable[[bytes], "bytes | None"]


@dataclass(slots=True, frozen=True)
class EncryptionPolicy:
    """Which methods we allow (a bit set of CRYPTO_PLAINTEXT and CRYPTO_RC4) and which we
    take when the peer offers both."""

    allowed: int = CRYPTO_PLAINTEXT | CRYPTO_RC4
    prefer: int = CRYPTO_RC4

    def __post_init__(self) -> None:
        if not self.allowed or self.allowed & ~KNOWN_METHODS:
            raise ValueError(f"MSE policy: no known method in {self.allowed:#x}")
        if self.prefer not in (CRYPTO_PLAINTEXT, CRYPTO_RC4):
            raise ValueError(f"MSE policy: prefer must be one method, not {self.prefer:#x}")

    def select(self, provided: int) -> int:
        """The one method to use of those the peer *provided*; MseError if none is common."""
        common = provided & self.allowed & KNOWN_METHODS
        if not common:
            raise MseError(
                f"MSE handshake: no common encryption method (peer offers {provided:#x}, "
                f"we allow {self.allowed:#x})"
            )
        return self.prefer if common & self.prefer else common


@dataclass(slots=True)
class Handshaken:
    """The handshake is through: *stream* carries the rest of the connection."""

    method: int
    stream: MseStream
    info_hash: bytes
    ia: bytes  # B: A's initial payload, decrypted; A: b""
    payload: bytes  # bytes received after the handshake, already decrypted


@dataclass(slots=True)
class Step:
    """What one ``receive`` asks of the caller: send *send*; once *done* is set the
    handshake is over and the caller switches to ``done.stream``."""

    send: bytes = b""
    done: Handshaken | None = None


def skey_lookup(info_hashes: Iterable[bytes]) -> SkeyLookup:
    """A receiver's lookup over a fixed set of info-hashes (a session with changing torrents
    keeps its own ``{req2(info_hash): info_hash}``)."""
    table = {req2(h): h for h in info_hashes}
    return table.get


def _pad(randbytes: RandBytes) -> bytes:
    """0-512 random bytes of padding (its length from the same source, so a test that hands
    in zeros gets no padding)."""
    return randbytes(int.from_bytes(randbytes(2), "big") % (MAX_PAD + 1))


class _Side:
    """What both roles share: the receive buffer, our key pair, the stream ciphers.

    Between calls the buffer holds less than the largest handshake (``limit``): the syncs
    give up past PadA's or PadB's bound, every other field has a known length and is taken
    as soon as it is in, and what follows the handshake goes out as payload."""

    limit: int

    def __init__(self, private_key: int | None, randbytes: RandBytes) -> None:
        self._x = private_key if private_key is not None else new_private_key()
        self._randbytes = randbytes
        self._buf = bytearray()
        self._secret = b""
        self._finished = False

    def _take(self, data: bytes | bytearray | memoryview) -> None:
        if self._finished:
            raise MseError("MSE handshake: bytes fed after the handshake ended")
        self._buf += data

    @property
    def pending(self) -> int:
        """Bytes received and held, not yet part of a finished field."""
        return len(self._buf)

    def _cut(self, n: int) -> bytes:
        part = bytes(self._buf[:n])
        del self._buf[:n]
        return part


class Initiator(_Side):
    """Side A (we dial): ``start()`` gives Ya + PadA; then feed B's bytes to ``receive``."""

    limit = KEY_LEN + MAX_PAD + len(VC) + 6 + MAX_PAD

    def __init__(
        self,
        info_hash: bytes,
        *,
        policy: EncryptionPolicy | None = None,
        ia: bytes = b"",
        private_key: int | None = None,
        randbytes: RandBytes = secrets.token_bytes,
    ) -> None:
        if len(ia) > MAX_IA:
            raise ValueError(f"MSE: IA is at most {MAX_IA} bytes")
        super().__init__(private_key, randbytes)
        self._info_hash = info_hash
        self._policy = policy or EncryptionPolicy()
        self._ia = ia
        self._state = "start"
        self._vc_seen = 0  # bytes of PadB scanned for ENCRYPT(VC)
        self._select = 0
        self._pad_d = -1

    @property
    def short_secret(self) -> bool:
        """S is agreed and its first byte is zero (one dial in 256). libtorrent 2.0.8
        (Debian 12's) closes such a handshake when it is dialled: of 1,500 dials here it
        closed 8, the 8 with S short (its req3 mask hashed from the unpadded S, it seems:
        arvidn/libtorrent#8434). Our key went out first, so only a new dial gets past it."""
        return bool(self._secret) and not self._secret[0]

    def start(self) -> bytes:
        """Step 1: Ya and PadA, the first bytes sent."""
        if self._state != "start":
            raise RuntimeError("MSE: start() called twice")
        self._state = "yb"
        return public_key(self._x) + _pad(self._randbytes)

    def receive(self, data: bytes | bytearray | memoryview) -> Step:
        """Feed bytes from B; returns what to send and, at the end, the result."""
        if self._state == "start":
            raise RuntimeError("MSE: receive() before start()")
        self._take(data)
        step = Step()
        if self._state == "yb":
            if len(self._buf) < KEY_LEN:
                return step
            step.send = self._step3(self._cut(KEY_LEN))
            self._state = "vc"
        if self._state == "vc" and not self._find_vc():
            return step
        if self._state == "select":
            if len(self._buf) < 6:
                return step
            head = self._in.apply(self._cut(6))
            self._select = int.from_bytes(head[:4], "big")
            if self._select not in (CRYPTO_PLAINTEXT, CRYPTO_RC4) or not (
                self._select & self._policy.allowed
            ):
                raise MseError(f"MSE handshake: the peer selected {self._select:#x}")
            self._pad_d = int.from_bytes(head[4:], "big")
            if self._pad_d > MAX_PAD:
                raise MseError(f"MSE handshake: PadD of {self._pad_d} bytes (over {MAX_PAD})")
            self._state = "pad_d"
        if self._state == "pad_d":
            if len(self._buf) < self._pad_d:
                return step
            self._in.apply(self._cut(self._pad_d))
            stream = MseStream(self._select, self._out, self._in)
            step.done = Handshaken(
                self._select,
                stream,
                self._info_hash,
                b"",
                stream.decrypt(self._cut(len(self._buf))),
            )
            self._finished = True
        return step

    def _step3(self, yb: bytes) -> bytes:
        s = self._secret = shared_secret(self._x, yb)
        self._out = Rc4(key_a(s, self._info_hash))
        self._in = Rc4(key_b(s, self._info_hash))
        self._vc = self._in.apply(VC)  # B's first 8 bytes after PadB, as they arrive
        pad_c = _pad(self._randbytes)
        plain = (
            VC
            + self._policy.allowed.to_bytes(4, "big")
            + len(pad_c).to_bytes(2, "big")
            + pad_c
            + len(self._ia).to_bytes(2, "big")
            + self._ia
        )
        return req1(s) + xor(req2(self._info_hash), req3(s)) + self._out.apply(plain)

    def _find_vc(self) -> bool:
        at = self._buf.find(self._vc, max(0, self._vc_seen - len(VC) + 1))
        if at < 0:
            self._vc_seen = len(self._buf)
            if len(self._buf) >= MAX_PAD + len(VC):
                raise MseError("MSE handshake: no verification constant within PadB's bound")
            return False
        if at > MAX_PAD:
            raise MseError("MSE handshake: no verification constant within PadB's bound")
        del self._buf[: at + len(VC)]
        self._state = "select"
        return True


class Receiver(_Side):
    """Side B (we accepted): feed A's bytes to ``receive``; it answers Yb + PadB once Ya is in,
    and ENCRYPT(VC, crypto_select, len(PadD), PadD) once A's step 3 is through."""

    limit = KEY_LEN + MAX_PAD + 20 + 20 + len(VC) + 6 + MAX_PAD + 2 + MAX_IA

    def __init__(
        self,
        lookup: SkeyLookup,
        *,
        policy: EncryptionPolicy | None = None,
        private_key: int | None = None,
        randbytes: RandBytes = secrets.token_bytes,
    ) -> None:
        super().__init__(private_key, randbytes)
        self._lookup = lookup
        self._policy = policy or EncryptionPolicy()
        self._state = "ya"
        self._scanned = 0
        self._pad_c = -1
        self._ia_len = -1
        self._provided = 0
        self._info_hash = b""

    def receive(self, data: bytes | bytearray | memoryview) -> Step:
        """Feed bytes from A; returns what to send and, at the end, the result."""
        self._take(data)
        step = Step()
        if self._state == "ya":
            if len(self._buf) < KEY_LEN:
                return step
            self._secret = shared_secret(self._x, self._cut(KEY_LEN))
            self._req1 = req1(self._secret)
            step.send = public_key(self._x) + _pad(self._randbytes)
            self._state = "req1"
        if self._state == "req1" and not self._find_req1():
            return step
        if self._state == "skey":
            if len(self._buf) < 20:
                return step
            self._skey(self._cut(20))
        if self._state == "provide":
            if len(self._buf) < 14:
                return step
            head = self._in.apply(self._cut(14))
            if head[:8] != VC:
                raise MseError("MSE handshake: the verification constant is wrong")
            self._provided = int.from_bytes(head[8:12], "big")
            self._pad_c = int.from_bytes(head[12:], "big")
            if self._pad_c > MAX_PAD:
                raise MseError(f"MSE handshake: PadC of {self._pad_c} bytes (over {MAX_PAD})")
            self._state = "pad_c"
        if self._state == "pad_c":
            if len(self._buf) < self._pad_c + 2:
                return step
            self._ia_len = int.from_bytes(self._in.apply(self._cut(self._pad_c + 2))[-2:], "big")
            if self._ia_len > MAX_IA:
                raise MseError(f"MSE handshake: IA of {self._ia_len} bytes (over {MAX_IA})")
            self._state = "ia"
        if self._state == "ia":
            if len(self._buf) < self._ia_len:
                return step
            return self._answer(step)
        return step

    def _find_req1(self) -> bool:
        at = self._buf.find(self._req1, max(0, self._scanned - 19))
        if at < 0:
            self._scanned = len(self._buf)
            if len(self._buf) >= MAX_PAD + 20:
                raise MseError("MSE handshake: no req1 hash within PadA's bound")
            return False
        if at > MAX_PAD:
            raise MseError("MSE handshake: no req1 hash within PadA's bound")
        del self._buf[: at + 20]
        self._state = "skey"
        return True

    def _skey(self, obfuscated: bytes) -> None:
        info_hash = self._lookup(xor(obfuscated, req3(self._secret)))
        if info_hash is None:
            raise MseError("MSE handshake: the peer asks for a torrent we do not serve")
        self._info_hash = info_hash
        self._in = Rc4(key_a(self._secret, info_hash))
        self._out = Rc4(key_b(self._secret, info_hash))
        self._state = "provide"

    def _answer(self, step: Step) -> Step:
        ia = self._in.apply(self._cut(self._ia_len))
        method = self._policy.select(self._provided)
        pad_d = _pad(self._randbytes)
        plain = VC + method.to_bytes(4, "big") + len(pad_d).to_bytes(2, "big") + pad_d
        step.send += self._out.apply(plain)
        stream = MseStream(method, self._out, self._in)
        rest = stream.decrypt(self._cut(len(self._buf)))
        step.done = Handshaken(method, stream, self._info_hash, ia, rest)
        self._finished = True
        return step
