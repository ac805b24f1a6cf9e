"""Runs of datagrams that one ``sendmsg`` with UDP segmentation offload can send (Linux's
``UDP_SEGMENT``, "GSO"), sans I/O: the kernel cuts one buffer into datagrams of the segment
size, the last one allowed shorter, so the peer receives exactly the datagrams it would have
from one ``sendto`` each (BEP 29's wire is unchanged), for one system call instead of dozens.

A run is consecutive datagrams to one address, all of one size but the last (which may be
shorter), at most :data:`MAX_SEGMENTS` of them and :data:`MAX_BYTES` in all (one UDP
datagram's limit over IPv4).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

__all__ = ["MAX_BYTES", "MAX_SEGMENTS", "runs"]

MAX_SEGMENTS = 64  # Linux's UDP_MAX_SEGMENTS (raised to 128 in later kernels)
MAX_BYTES = 65507  # 65535 less the IPv4 and UDP headers


def runs(datagrams: Sequence[bytes]) -> Iterator[tuple[int, int, int]]:
    """``(start, end, size)`` for each run of ``datagrams[start:end]`` (segment *size*), in
    order; a run of one datagram is one to send alone."""
    i, n = 0, len(datagrams)
    while i < n:
        size = len(datagrams[i])
        limit = min(n, i + min(MAX_SEGMENTS, MAX_BYTES // max(size, 1)))
        j = i + 1
        while j < limit and len(datagrams[j]) == size:
            j += 1
        if j < limit and len(datagrams[j]) < size:
            j += 1  # a shorter last segment
        yield i, j, size
        i = j
