"""BEP 3 bitfields: piece 0 is the high bit of byte 0, and the spare bits at the end are zero."""

from __future__ import annotations

from collections.abc import Sequence

from swarm.errors import ProtocolError

__all__ = ["bitfield_from_bools", "bools_from_bitfield", "check_bitfield"]

_BITS_TO_DIGITS = bytes.maketrans(b"\x00\x01", b"01")
_DIGITS_TO_BITS = bytes.maketrans(b"01", b"\x00\x01")


def check_bitfield(bits: bytes, num_pieces: int) -> None:
    """Raise :class:`ProtocolError` unless *bits* is ceil(n/8) bytes with its spare bits clear."""
    if len(bits) != -(-num_pieces // 8):
        raise ProtocolError(
            f"the peer sent a bitfield of {len(bits)} bytes for {num_pieces} pieces"
        )
    spare = len(bits) * 8 - num_pieces
    if spare and bits[-1] & ((1 << spare) - 1):
        raise ProtocolError("the peer sent a bitfield with its spare bits set")


def bitfield_from_bools(haves: Sequence[bool]) -> bytes:
    """The BEP 3 bitfield of *haves*: piece 0 is the high bit of byte 0; spare bits are 0."""
    n = len(haves)
    if not n:
        return b""
    # One C-level pass each: bools to b"0"/b"1" digits, digits to an int (base 2 has no
    # digit limit), the int to bytes.
    digits = bytes(map(bool, haves)).translate(_BITS_TO_DIGITS)
    return (int(digits, 2) << (-n % 8)).to_bytes((n + 7) // 8, "big")


def bools_from_bitfield(bits: bytes, num_pieces: int) -> list[bool]:
    """Which of *num_pieces* pieces *bits* marks; :class:`ProtocolError` if it is malformed."""
    check_bitfield(bits, num_pieces)
    if not num_pieces:
        return []
    text = format(int.from_bytes(bits, "big"), f"0{len(bits) * 8}b")
    return list(map(bool, text[:num_pieces].encode().translate(_DIGITS_TO_BITS)))
