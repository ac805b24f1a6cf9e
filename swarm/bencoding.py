"""Strict bencoding on top of bencode.py (BEP 3), plus the raw span of a dictionary value.

bencode.py does the decoding; this module only makes it strict (lengths and integers must be
canonical digits, so hostile input can neither loop nor be read two ways) and exposes where a
top-level value starts and ends, which the info-hash needs: it is the SHA-1 of the ``info``
value's bytes exactly as they stand in the file, whatever order its keys are in.

Every refusal is a :class:`~swarm.errors.BencodeError`; a caller that reads something more
specific (a .torrent file, a peer's extended handshake) turns it into its own error type.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import bencodepy
import fastbencode
from bencodepy.decoder import BencodeDecoder

from swarm.errors import BencodeError

__all__ = ["Raw", "decode", "decode_with_spans", "encode"]

Raw = bencodepy.Bencached
"""Bytes that are already bencoded and are written out verbatim by :func:`encode`."""

_MAX_DEPTH = 64
_T = TypeVar("_T")


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
    data = _bytes(data)
    fast = _fast(data)
    if fast is not None:
        return fast
    value, end = _strictly(lambda: _DECODER.decode_func[data[0:1]](data, 0))
    _check_end(data, end)
    return value


def decode_with_spans(data: bytes) -> tuple[dict[bytes, Any], dict[bytes, tuple[int, int]]]:
    """Decode a top-level dictionary and give each key's value span ``(start, end)`` in *data*.

    One pass, as bencode.py reads a dictionary, noting where each value starts and ends (it
    used to decode everything twice: a 1 MiB info dictionary took 0.2 s)."""
    data = _bytes(data)
    if data[0:1] != b"d":
        raise BencodeError("the top level is not a dictionary")
    fast = _fast(data)
    if isinstance(fast, dict):
        # Canonical input (sorted keys, plain numbers): each value is its own re-encoding.
        spans: dict[bytes, tuple[int, int]] = {}
        pos = 1
        for key, item in fast.items():
            start = pos + len(key) + len(str(len(key))) + 1
            pos = start + len(fastbencode.bencode(item))
            spans[key] = (start, pos)
        if pos + 1 == len(data):
            return fast, spans

    def read() -> tuple[dict[bytes, Any], dict[bytes, tuple[int, int]], int]:
        value: dict[bytes, Any] = {}
        spans: dict[bytes, tuple[int, int]] = {}
        pos = 1
        while data[pos : pos + 1] != b"e":
            key, start = _DECODER.decode_string(data, pos, kind="key")
            value[key], pos = _DECODER.decode_func[data[start : start + 1]](data, start, depth=1)
            spans[key] = (start, pos)
        return value, spans, pos + 1

    value, spans, end = _strictly(read)
    _check_end(data, end)
    return value, spans


def _fast(data: bytes) -> Any:
    """fastbencode's reading of *data* (C, some 30x faster than bencode.py) when it is
    canonical bencoding (dictionary keys sorted) nested no deeper than we allow; None
    otherwise, and the strict pure-Python reader has the last word."""
    try:
        value = fastbencode.bdecode(data)
    except Exception:  # its errors are ValueError, but it is C: take no chances
        return None
    if data.count(b"d") + data.count(b"l") < _MAX_DEPTH:
        return value  # too few list and dict openings to nest that deep: no walk needed
    return value if _depth_ok(value) else None


def _depth_ok(value: Any) -> bool:
    stack: list[tuple[Any, int]] = [(value, 0)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict):
            items: Any = item.values()
        elif isinstance(item, list):
            items = item
        else:
            continue
        if depth >= _MAX_DEPTH:
            return False
        stack.extend((x, depth + 1) for x in items)
    return True


def _bytes(data: object) -> bytes:
    if not isinstance(data, bytes | bytearray | memoryview):
        raise BencodeError("bencoded data must be bytes")
    if not data:
        raise BencodeError("not bencoded data: it is empty")
    return bytes(data)


def _strictly(read: Callable[[], _T]) -> _T:
    """Run a read of bencode.py's, every failure of it a :class:`BencodeError`."""
    try:
        return read()
    except RecursionError:
        raise BencodeError("not valid bencoding: nested too deeply") from None
    except (IndexError, KeyError, TypeError, ValueError, bencodepy.BencodeDecodeError):
        raise BencodeError("not valid bencoding") from None


def _check_end(data: bytes, end: int) -> None:
    if end != len(data):
        raise BencodeError(f"not valid bencoding: {len(data) - end} bytes of trailing data")


def encode(value: Any) -> bytes:
    """Bencode *value* (dict keys sorted as BEP 3 requires; :data:`Raw` written verbatim)."""
    try:
        fast: bytes = fastbencode.bencode(value)  # C; it declines text and Raw with TypeError
        return fast
    except TypeError:
        pass
    try:
        data: bytes = bencodepy.encode(value)
    except (KeyError, TypeError) as exc:
        raise BencodeError(f"cannot bencode a value of type {exc}") from None
    return data
