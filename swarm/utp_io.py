"""The socket calls of the uTP shell (:mod:`swarm.utp_shell`) that Python 3.11 has no names
for: UDP segmentation offload on send and generic receive offload on read (Linux).

GSO (``UDP_SEGMENT``, Linux 4.18+): one ``sendmsg`` of a run of datagrams of one size (the
last may be shorter; :func:`swarm.utp.batch.runs`) and the kernel sends them as that many
datagrams, exactly as one ``sendto`` each would: the peer and the wire see no difference.
GRO (``UDP_GRO``, Linux 5.0+): a read may return several datagrams of one sender joined,
with their size in a control message; on loopback a GSO send arrives whole. Both cut the
system calls and the kernel's per-datagram work of a bulk transfer by the run's length (up to
46 packets of 1400 bytes).
"""

from __future__ import annotations

import errno
import socket
import struct
import sys
from typing import Any

__all__ = [
    "GRO_ANC",
    "GSO",
    "IP_RECVERR",
    "MSG_ERRQUEUE",
    "RECV_SIZE",
    "gro",
    "gro_size",
    "read",
    "send_run",
    "unreachable",
]

RECV_SIZE = 65536  # a whole UDP datagram (or GRO's joined ones): never one cut short

SOL_UDP, UDP_SEGMENT, UDP_GRO = 17, 103, 104
GSO = sys.platform == "linux"
GRO_ANC = socket.CMSG_SPACE(4) if GSO and hasattr(socket, "CMSG_SPACE") else 0
_U16 = struct.Struct("=H")


def send_run(sock: socket.socket, group: list[bytes], size: int, addr: tuple[str, int]) -> None:
    """Send the datagrams *group* (each *size* bytes, the last one maybe fewer) to *addr* in
    one call; OSError as ``sendmsg`` raises it (EIO or EINVAL: no GSO on this route)."""
    sock.sendmsg(group, [(SOL_UDP, UDP_SEGMENT, _U16.pack(size))], 0, addr)


def gro(sock: socket.socket) -> bool:
    """Ask for UDP generic receive offload (Linux 5.0+): a read may return several
    datagrams of one sender joined, each but the last of the size :func:`gro_size` gives
    (a GSO send's, on loopback, arrives whole). False where the kernel has none."""
    if not GSO or not GRO_ANC:
        return False
    try:
        sock.setsockopt(SOL_UDP, UDP_GRO, 1)
    except OSError:
        return False
    return True


def gro_size(ancdata: list[tuple[int, int, bytes]], size: int) -> int:
    """The size of each datagram in a read of *size* bytes (UDP_GRO's control message)."""
    for level, kind, data in ancdata:
        if level == SOL_UDP and kind == UDP_GRO and len(data) >= 4:
            return int.from_bytes(data[:4], sys.byteorder) or size
    return size


def read(sock: socket.socket, gro: bool) -> tuple[bytes, int, Any]:
    """One read of *sock* (with GRO on or not): the bytes, the size of each datagram in
    them (all of it when there is one) and the sender's address."""
    if gro:
        data, anc, _flags, addr = sock.recvmsg(RECV_SIZE, GRO_ANC)
        return data, gro_size(anc, len(data)), addr
    data, addr = sock.recvfrom(RECV_SIZE)
    return data, len(data), addr


# Linux queues ICMP errors of an unconnected UDP socket only with IP_RECVERR (Python 3.11 has
# no name for it); elsewhere a dial to a closed port waits for its timeouts.
IP_RECVERR = 11
MSG_ERRQUEUE = getattr(socket, "MSG_ERRQUEUE", 0) if sys.platform == "linux" else 0
UNREACHABLE = (errno.ECONNREFUSED, errno.EHOSTUNREACH, errno.ENETUNREACH)


def unreachable(ancdata: list[tuple[int, int, bytes]]) -> bool:
    """Whether an error-queue read's control messages say "unreachable" (port or host)."""
    for level, kind, cdata in ancdata:
        if level == socket.IPPROTO_IP and kind == IP_RECVERR and len(cdata) >= 4:
            if struct.unpack_from("=I", cdata)[0] in UNREACHABLE:
                return True
    return False
