"""Strict bencoding on top of bencode.py (BEP 3), plus the raw span of a dictionary value.

bencode.py does the decoding; this module only makes it strict (lengths and integers must be
canonical digits, so hostile input can neither loop nor be read two ways) and exposes where a
top-level value starts and ends, which the info-hash needs: it is the SHA-1 of the ``info``
value's bytes exactly as they stand in the file, whatever order its keys are in.

Every refusal is a :class:`~swarm.errors.BencodeError`; a caller that reads something more
specific (a .torrent file, a peer's extended handshake) turns it into its own error type.
"""

from __future__ import annotations

from typing import Any

import bencodepy
from bencodepy.decoder import BencodeDecoder

from swarm.errors import BencodeError

__all__ = ["Raw", "decode", "decode_with_spans", "encode"]

Raw = bencodepy.Bencached
"""Bytes that are already bencoded and are written out verbatim by :func:`encode`."""

_MAX_DEPTH = 64


class _StrictDecoder(BencodeDecoder):
    """bencode.py's decoder with canonical-form checks that it leaves out."""

    def __init__(self) -> None:
        super().__init__(encoding=None, dict_ordered=True, max_depth=_MAX_DEPTH)

    def decode_int(self, x: bytes, f: int, **kwargs: Any) -> tuple[int, int]:
        end = x.index(b"e", f + 1)
        digits = x[f + 1 : end]
        body = digits[1:] if digits[:1] == b"-" else digits
        if not body.isdigit() or not body.isascii():
            raise ValueError("integer is not plain digits")
        read: tuple[int, int] = super().decode_int(x, f, **kwargs)
        return read

    def decode_string(
        self, x: bytes, f: int, kind: str = "value", **kwargs: Any
    ) -> tuple[bytes, int]:
        colon = x.index(b":", f)
        digits = x[f:colon]
        if not digits.isdigit() or not digits.isascii() or len(digits) > 12:
            raise ValueError("string length is not plain digits")
        if colon + 1 + int(digits) > len(x):
            raise ValueError("string runs past the end of the data")
        read: tuple[bytes, int] = super().decode_string(x, f, kind=kind, **kwargs)
        return read


_DECODER = _StrictDecoder()


def decode(data: bytes | bytearray | memoryview) -> Any:
    """Decode one bencoded value; byte strings stay ``bytes``, dicts keep their key order.

    Raises :class:`BencodeError` for anything that is not exactly one valid value.
    """
    if not isinstance(data, bytes | bytearray | memoryview):
        raise BencodeError("bencoded data must be bytes")
    data = bytes(data)
    if not data:
        raise BencodeError("not bencoded data: it is empty")
    try:
        value, end = _DECODER.decode_func[data[0:1]](data, 0)
    except RecursionError:
        raise BencodeError("not valid bencoding: nested too deeply") from None
    except (IndexError, KeyError, TypeError, ValueError, bencodepy.BencodeDecodeError):
        raise BencodeError("not valid bencoding") from None
    if end != len(data):
        raise BencodeError(f"not valid bencoding: {len(data) - end} bytes of trailing data")
    return value


def decode_with_spans(data: bytes) -> tuple[dict[bytes, Any], dict[bytes, tuple[int, int]]]:
    """Decode a top-level dictionary and give each key's value span ``(start, end)`` in *data*."""
    value = decode(data)
    if not isinstance(value, dict):
        raise BencodeError("the top level is not a dictionary")
    spans: dict[bytes, tuple[int, int]] = {}
    pos = 1
    while data[pos : pos + 1] != b"e":
        key, pos = _DECODER.decode_string(data, pos, kind="key")
        start = pos
        _, pos = _DECODER.decode_func[data[pos : pos + 1]](data, pos)
        spans[key] = (start, pos)
    return value, spans


def encode(value: Any) -> bytes:
    """Bencode *value* (dict keys sorted as BEP 3 requires; :data:`Raw` written verbatim)."""
    try:
        data: bytes = bencodepy.encode(value)
    except (KeyError, TypeError) as exc:
        raise BencodeError(f"cannot bencode a value of type {exc}") from None
    return data
