"""Strict bencoding (BEP 3): one canonical reading or a BencodeError, and exact value spans."""

from __future__ import annotations

import random
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from swarm import bencoding
from swarm.errors import BencodeError, MetainfoError, SwarmError


def raw_dict(items: list[tuple[bytes, bytes]]) -> bytes:
    """A bencoded dictionary with keys in the given order (values already bencoded)."""
    return b"d" + b"".join(b"%d:%s%s" % (len(k), k, v) for k, v in items) + b"e"


values = st.recursive(
    st.integers() | st.binary(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.binary(max_size=8), inner, max_size=4)
    ),
    max_leaves=20,
)


@pytest.mark.parametrize(
    "data",
    [
        b"i03e",  # leading zero
        b"i-0e",  # negative zero
        b"i-03e",
        b"i 1e",  # whitespace
        b"i1 e",
        b"i1_0e",  # Python's int() would take this
        b"i+1e",
        b"ie",
        b"i-e",
        b"i1.0e",
        b"i0x1e",
        "i\u0663e".encode(),  # an Arabic-Indic digit: int() would take this too
        b"i1",  # no end
        b"-3:abc",  # negative string length
        b"03:abc",  # leading zero in a length
        b" 3:abc",
        b"+3:abc",
        b"4:abc",  # string runs past the end
        b"999999999999:x",
        b"1000000000000:x",  # a length too long to be real
        b"l",
        b"li1e",
        b"d",
        b"d1:a",
        b"di1ei2ee",  # keys must be strings
        b"x",
        b"",
    ],
)
def test_non_canonical_or_broken_input_is_refused(data: bytes) -> None:
    with pytest.raises(BencodeError, match="bencod"):
        bencoding.decode(data)


@pytest.mark.parametrize(
    ("data", "extra"), [(b"i1ee", 1), (b"le\n", 1), (b"0:0:", 2), (b"d1:ai1eexyz", 3)]
)
def test_trailing_data_is_refused_with_its_size(data: bytes, extra: int) -> None:
    with pytest.raises(BencodeError, match=f"{extra} bytes of trailing data"):
        bencoding.decode(data)


def test_bencode_error_is_a_swarm_error_apart_from_metainfo_error() -> None:
    with pytest.raises(SwarmError):
        bencoding.decode(b"i03e")
    assert not issubclass(BencodeError, MetainfoError)
    assert not issubclass(MetainfoError, BencodeError)


def test_text_is_not_bytes() -> None:
    with pytest.raises(BencodeError, match="must be bytes"):
        bencoding.decode("i1e")  # type: ignore[arg-type]


@pytest.mark.parametrize("depth", [100, 1000, 100_000])
@pytest.mark.parametrize("opener", [b"l", b"d1:a"])
def test_deep_nesting_is_refused(depth: int, opener: bytes) -> None:
    data = opener * depth + b"i1e" + b"e" * depth
    with pytest.raises(BencodeError):
        bencoding.decode(data)


def test_reasonable_nesting_is_read() -> None:
    value = bencoding.decode(b"l" * 32 + b"e" * 32)
    for _ in range(31):
        value = value[0]
    assert value == []


@pytest.mark.parametrize(
    ("data", "value"),
    [
        (b"i0e", 0),
        (b"i-42e", -42),
        (b"i18446744073709551616e", 1 << 64),
        (b"0:", b""),
        (b"3:\x00\xff:", b"\x00\xff:"),
        (b"le", []),
        (b"de", {}),
        (b"l4:spami42ee", [b"spam", 42]),
        (b"d3:bar4:spam3:fooi42ee", {b"bar": b"spam", b"foo": 42}),
    ],
)
def test_valid_values(data: bytes, value: Any) -> None:
    assert bencoding.decode(data) == value
    assert bencoding.decode(bytearray(data)) == value
    assert bencoding.decode(memoryview(data)) == value


def test_dicts_keep_the_order_of_the_file() -> None:
    value = bencoding.decode(b"d1:bi1e1:ai2ee")
    assert list(value) == [b"b", b"a"]


def test_encode_sorts_keys_and_writes_raw_verbatim() -> None:
    assert bencoding.encode({b"b": 1, b"a": [b"x", 2]}) == b"d1:al1:xi2ee1:bi1ee"
    unsorted = raw_dict([(b"z", b"i1e"), (b"a", b"i2e")])
    assert bencoding.encode({b"info": bencoding.Raw(unsorted)}) == b"d4:info" + unsorted + b"e"


@pytest.mark.parametrize("value", [1.5, None, object()])
def test_encode_refuses_what_bencoding_cannot_hold(value: object) -> None:
    with pytest.raises(BencodeError, match="cannot bencode"):
        bencoding.encode(value)


def test_spans_are_exact_on_unsorted_dicts() -> None:
    info = raw_dict([(b"pieces", b"3:abc"), (b"name", b"1:x"), (b"length", b"i5e")])
    items = [(b"zz", b"i-7e"), (b"info", info), (b"announce", b"l1:ae"), (b"a", b"de")]
    data = raw_dict(items)
    value, spans = bencoding.decode_with_spans(data)
    assert list(spans) == [k for k, _ in items] == list(value)
    for key, raw in items:
        start, end = spans[key]
        assert data[start:end] == raw
        assert bencoding.decode(raw) == value[key]
    # The span of the unsorted info dict differs from its sorted re-encoding.
    assert bencoding.encode(value[b"info"]) != info


@pytest.mark.parametrize("data", [b"le", b"i1e", b"3:abc"])
def test_spans_need_a_dictionary(data: bytes) -> None:
    with pytest.raises(BencodeError, match="not a dictionary"):
        bencoding.decode_with_spans(data)


def test_spans_of_broken_input_raise_bencode_error() -> None:
    with pytest.raises(BencodeError):
        bencoding.decode_with_spans(b"d4:infoi03ee")


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=200))
def test_random_bytes_give_a_value_or_a_bencode_error(data: bytes) -> None:
    try:
        value = bencoding.decode(data)
    except BencodeError:
        return
    # Whatever was accepted is a real value that survives a round trip.
    assert bencoding.decode(bencoding.encode(value)) == value


@settings(max_examples=300, deadline=None)
@given(st.lists(st.sampled_from(list(b"ildei-0123456789:ax")), max_size=60))
def test_bencode_alphabet_soup_gives_a_value_or_a_bencode_error(chars: list[int]) -> None:
    # Random bytes rarely look like bencoding; these do, so the strict paths get exercised.
    data = bytes(chars)
    try:
        value = bencoding.decode(data)
    except BencodeError:
        return
    assert bencoding.decode(bencoding.encode(value)) == value


@settings(max_examples=200, deadline=None)
@given(values)
def test_encode_decode_round_trip(value: Any) -> None:
    data = bencoding.encode(value)
    assert bencoding.decode(data) == value
    assert bencoding.encode(bencoding.decode(data)) == data


@settings(max_examples=200, deadline=None)
@given(st.dictionaries(st.binary(max_size=8), values, min_size=1, max_size=6), st.randoms())
def test_spans_match_any_key_order(d: dict[bytes, Any], rng: random.Random) -> None:
    items = [(k, bencoding.encode(v)) for k, v in d.items()]
    rng.shuffle(items)
    data = raw_dict(items)
    value, spans = bencoding.decode_with_spans(data)
    assert value == d
    for key, raw in items:
        start, end = spans[key]
        assert data[start:end] == raw


def _strict(data: bytes) -> Any:
    """The pure-Python strict reader alone (what decode falls back on)."""
    value, end = bencoding._strictly(lambda: bencoding._DECODER.decode_func[data[0:1]](data, 0))
    bencoding._check_end(data, end)
    return value


@settings(max_examples=300, deadline=None)
@given(st.one_of(values.map(bencoding.encode), st.binary(min_size=1, max_size=64)))
def test_the_fast_reader_accepts_only_what_the_strict_one_reads_the_same(data: bytes) -> None:
    # fastbencode (C) reads canonical input first; whatever it accepts, the strict reader
    # must accept too, with the same value; what it declines, the strict reader decides.
    fast = bencoding._fast(data)
    if fast is not None:
        assert _strict(data) == fast
    try:
        strict = _strict(data)
    except BencodeError:
        with pytest.raises(BencodeError):
            bencoding.decode(data)
        return
    assert bencoding.decode(data) == strict


@settings(max_examples=200, deadline=None)
@given(values)
def test_encode_writes_what_bencode_py_writes(value: Any) -> None:
    # encode tries fastbencode (C) first; it must write exactly what bencode.py does.
    import bencodepy

    assert bencoding.encode(value) == bencodepy.encode(value)


@pytest.mark.parametrize("depth", range(60, 70))
def test_the_fast_reader_and_the_strict_one_agree_on_nesting_near_the_limit(depth: int) -> None:
    # The fast path skips its depth walk when the data has too few 'l' and 'd' bytes to nest
    # that deep; near the limit the answer must be the strict reader's.
    data = b"l" * depth + b"i1e" + b"e" * depth
    try:
        strict: object = bencoding._DECODER.decode(data)
    except Exception:
        strict = BencodeError
    if strict is BencodeError:
        with pytest.raises(BencodeError):
            bencoding.decode(data)
    else:
        assert bencoding.decode(data) == strict
