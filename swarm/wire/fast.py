"""BEP 6 (fast extension): the canonical allowed-fast set of a peer."""

from __future__ import annotations

import hashlib
import ipaddress

__all__ = ["allowed_fast_set"]


def allowed_fast_set(ip: str, info_hash: bytes, num_pieces: int, k: int = 10) -> list[int]:
    """The pieces BEP 6's canonical algorithm lets the peer at *ip* request while choked.

    BEP 6 defines the set for IPv4 (the address masked to its /24); an IPv4-mapped IPv6
    address counts as IPv4, and any other IPv6 peer gets no allowed-fast set.
    """
    addr = ipaddress.ip_address(ip)
    if isinstance(addr, ipaddress.IPv6Address):
        if addr.ipv4_mapped is None:
            return []
        addr = addr.ipv4_mapped
    k = min(k, num_pieces)
    if k <= 0:
        return []
    x = (int(addr) & 0xFFFFFF00).to_bytes(4, "big") + bytes(info_hash)
    chosen: list[int] = []
    seen: set[int] = set()
    while len(chosen) < k:
        x = hashlib.sha1(x).digest()
        for i in range(0, 20, 4):
            if len(chosen) >= k:
                break
            index = int.from_bytes(x[i : i + 4], "big") % num_pieces
            if index not in seen:
                seen.add(index)
                chosen.append(index)
    return chosen
