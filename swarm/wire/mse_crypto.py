"""MSE/PE's arithmetic and ciphers: the Diffie-Hellman keys, the spec's hashes, RC4 (as data).

Message Stream Encryption (the Vuze/Azureus spec that libtorrent, Transmission and
qBittorrent speak) agrees a secret S by Diffie-Hellman over a fixed 768-bit prime P with
generator 2, derives HASH('keyA', S, SKEY) and HASH('keyB', S, SKEY) (SKEY is the torrent's
info-hash), and runs RC4 with the first 1024 bytes of keystream discarded. HASH is SHA-1.

Which library does what, and why:

- The modular exponentiation ``Y = 2^x mod P`` and ``S = Y'^x mod P`` is Python's built-in
  three-argument ``pow``: that is arithmetic on big integers, not a cipher, and no crypto
  library offers this ad-hoc 768-bit group. The private key ``x`` (160 bits, as the spec says)
  comes from :mod:`secrets`, the OS's random source.
- RC4 is ``cryptography``'s ARC4 (``cryptography.hazmat.decrepit``: RC4 is broken as a cipher,
  and the spec uses it as an obfuscation layer anyway). ``cryptography`` is the well-kept
  OpenSSL binding of the Python world, and its RC4 runs in C, which the payload stream needs
  (every byte of a torrent passes through it).
- SHA-1 is :mod:`hashlib`'s.

Nothing here does I/O; :mod:`swarm.wire.mse` holds the handshake's state machines.
"""

from __future__ import annotations

import hashlib
import secrets
from typing import Final

from cryptography.hazmat.decrepit.ciphers.algorithms import ARC4
from cryptography.hazmat.primitives.ciphers import Cipher

from swarm.errors import ProtocolError

#: The spec's 768-bit safe prime (the Oakley group 1 prime) and generator.
P: Final = int(
    "FFFFFFFFFFFFFFFFC90FDAA22168C234C4C6628B80DC1CD129024E088A67CC74020BBEA63B139B22"
    "514A08798E3404DDEF9519B3CD3A431B302B0A6DF25F14374FE1356D6D51C245E485B576625E7EC6"
    "F44C42E9A63A36210000000000090563",
    16,
)
G: Final = 2
KEY_LEN: Final = 96  # bytes of a public key (Ya, Yb) and of the secret S, big-endian
PRIVATE_KEY_BITS: Final = 160
MAX_PAD: Final = 512  # PadA, PadB, PadC, PadD are each 0-512 bytes
VC: Final = bytes(8)  # the verification constant
DISCARD: Final = 1024  # keystream bytes thrown away before use

CRYPTO_PLAINTEXT: Final = 0x01
CRYPTO_RC4: Final = 0x02
KNOWN_METHODS: Final = CRYPTO_PLAINTEXT | CRYPTO_RC4

PROTOCOL_HEADER: Final = b"\x13BitTorrent protocol"


class MseError(ProtocolError):
    """A peer's MSE handshake cannot go on (a wrong info-hash, garbage, padding over the
    limit, no common method): the caller closes the connection."""


def new_private_key() -> int:
    """A fresh 160-bit DH private key from the OS's random source (never zero)."""
    return secrets.randbits(PRIVATE_KEY_BITS) | 1


def public_key(private_key: int) -> bytes:
    """Y = G^x mod P, as the 96 bytes sent on the wire."""
    return pow(G, private_key, P).to_bytes(KEY_LEN, "big")


def shared_secret(private_key: int, their_public: bytes) -> bytes:
    """S = Y'^x mod P, 96 bytes; refuses a public key outside 2..P-2 (a degenerate S)."""
    y = int.from_bytes(their_public, "big")
    if not 1 < y < P - 1:
        raise MseError("MSE handshake: the peer's public key is degenerate")
    return pow(y, private_key, P).to_bytes(KEY_LEN, "big")


def sha1(*parts: bytes) -> bytes:
    """The spec's HASH: SHA-1 over the parts concatenated."""
    return hashlib.sha1(b"".join(parts)).digest()


def req1(secret: bytes) -> bytes:
    """HASH('req1', S): the marker the receiver syncs on after PadA."""
    return sha1(b"req1", secret)


def req2(info_hash: bytes) -> bytes:
    """HASH('req2', SKEY): what a receiver looks its torrents up by (after xor with req3)."""
    return sha1(b"req2", info_hash)


def req3(secret: bytes) -> bytes:
    """HASH('req3', S)."""
    return sha1(b"req3", secret)


def xor(a: bytes, b: bytes) -> bytes:
    return (int.from_bytes(a, "big") ^ int.from_bytes(b, "big")).to_bytes(len(a), "big")


class Rc4:
    """One direction's RC4 keystream, the first 1024 bytes discarded; ``apply`` encrypts or
    decrypts (the same operation), keeping the stream's position across calls."""

    __slots__ = ("_ctx",)

    def __init__(self, key: bytes) -> None:
        self._ctx = Cipher(ARC4(key), mode=None).encryptor()
        self._ctx.update(bytes(DISCARD))

    def apply(self, data: bytes | bytearray | memoryview) -> bytes:
        return self._ctx.update(data)

    def apply_into(self, data: bytes | bytearray | memoryview, out: memoryview) -> int:
        """``apply`` written into *out* (at least ``len(data)`` bytes), no copy of its own;
        the bytes written."""
        return self._ctx.update_into(data, out)


def key_a(secret: bytes, info_hash: bytes) -> bytes:
    """HASH('keyA', S, SKEY): the key of what the initiator (A) sends."""
    return sha1(b"keyA", secret, info_hash)


def key_b(secret: bytes, info_hash: bytes) -> bytes:
    """HASH('keyB', S, SKEY): the key of what the receiver (B) sends."""
    return sha1(b"keyB", secret, info_hash)


class MseStream:
    """The connection's bytes after the handshake: RC4 both ways when RC4 was selected, passed
    through untouched when plaintext was. The peer wire layer runs on top of it."""

    __slots__ = ("method", "_out", "_in")

    def __init__(self, method: int, out_cipher: Rc4, in_cipher: Rc4) -> None:
        self.method = method
        self._out: Rc4 | None = out_cipher if method == CRYPTO_RC4 else None
        self._in: Rc4 | None = in_cipher if method == CRYPTO_RC4 else None

    @property
    def encrypted(self) -> bool:
        return self._out is not None

    @property
    def ciphers(self) -> tuple[Rc4, Rc4] | None:
        """RC4's (out, in) ciphers, None when plaintext was selected: for a shell that
        encrypts into its own buffers rather than call :meth:`encrypt` per message."""
        if self._out is None or self._in is None:
            return None
        return self._out, self._in

    def encrypt(self, data: bytes | bytearray | memoryview) -> bytes:
        """Bytes to send, as they go on the wire."""
        return self._out.apply(data) if self._out is not None else bytes(data)

    def decrypt(self, data: bytes | bytearray | memoryview) -> bytes:
        """Bytes received, as the peer wire layer reads them."""
        return self._in.apply(data) if self._in is not None else bytes(data)


def looks_plain(data: bytes | bytearray | memoryview) -> bool | None:
    """At a listener, what a connection's first bytes are: True for a plain BitTorrent
    handshake (byte 19 and "BitTorrent protocol"), False for anything else (it may be MSE),
    None while the bytes so far are a prefix of the plain header (wait for more)."""
    head = bytes(data[: len(PROTOCOL_HEADER)])
    if not PROTOCOL_HEADER.startswith(head):
        return False
    return True if len(head) == len(PROTOCOL_HEADER) else None
