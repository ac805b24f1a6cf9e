"""The transport and the reader of an MSE connection (see :mod:`swarm.mse_shell`): the socket's
own methods while the bytes are plain, RC4 on the way out and in once RC4 is selected."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable
from typing import Any

from swarm.wire.mse_crypto import Rc4

__all__ = ["MseTransport", "Rc4Reader"]

CHUNK = 64 * 1024


class MseTransport:
    """The transport the protocol above writes to: the socket's, with RC4 on the way out once
    RC4 is selected. ``abort`` and ``close`` from above are remembered (we closed it, the peer
    did not), and whether the MSE handshake ran (PEX tells others such a peer supports it)."""

    def __init__(self, real: asyncio.Transport) -> None:
        self.real = real
        self.closed_by_us = False
        self.mse = False  # the connection went through the MSE/PE handshake (RC4 or plain)
        self._out: Rc4 | None = None
        self.write: Callable[[Any], None] = real.write
        self.writelines: Callable[[Iterable[Any]], None] = real.writelines
        self.is_closing = real.is_closing

    def __getattr__(self, name: str) -> Any:
        # The rest (get_extra_info, set_write_buffer_limits, pause_reading, ...) is the
        # socket transport's own, whatever kind it is (TCP, or uTP's).
        return getattr(self.real, name)

    def abort(self) -> None:
        self.closed_by_us = True
        self.real.abort()

    def close(self) -> None:
        self.closed_by_us = True
        self.real.close()

    def encrypt_with(self, cipher: Rc4) -> None:
        self._out = cipher
        self.write = self._write_rc4
        self.writelines = self._writelines_rc4

    def _write_rc4(self, data: bytes | bytearray | memoryview) -> None:
        assert self._out is not None
        self.real.write(self._out.apply(data))

    def _writelines_rc4(self, parts: Iterable[bytes | bytearray | memoryview]) -> None:
        """The parts encrypted into one buffer (their one copy), written in one call."""
        assert self._out is not None
        parts = list(parts)
        buf = bytearray(sum(len(p) for p in parts))
        view, at = memoryview(buf), 0
        for p in parts:
            at += self._out.apply_into(p, view[at:])
        self.real.write(buf)


class Rc4Reader(asyncio.Protocol):
    """After an RC4 handshake: what the socket reads, decrypted, to the protocol above."""

    def __init__(self, inner: asyncio.Protocol, cipher: Rc4) -> None:
        self.inner = inner
        self._apply = cipher.apply

    def data_received(self, data: bytes) -> None:
        # cryptography's update() of a whole read (up to 256 KiB) ran at half the speed of
        # 64 KiB pieces here (2.75 against 1.62 CPU s/GiB): pieces of CHUNK bytes each go up
        # on their own (a message cut in two is joined by the parser, as across reads).
        apply, inner = self._apply, self.inner
        if len(data) <= CHUNK:
            inner.data_received(apply(data))
            return
        view = memoryview(data)
        for at in range(0, len(data), CHUNK):
            inner.data_received(apply(view[at : at + CHUNK]))

    def eof_received(self) -> bool | None:
        return self.inner.eof_received()

    def connection_lost(self, exc: Exception | None) -> None:
        self.inner.connection_lost(exc)

    def pause_writing(self) -> None:
        self.inner.pause_writing()

    def resume_writing(self) -> None:
        self.inner.resume_writing()
