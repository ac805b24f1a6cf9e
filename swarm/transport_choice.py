"""Which transport to dial a peer with, uTP (BEP 29) or TCP: a pure policy, no sockets.

It follows libtorrent (``peer_connection::connect_failed``): a peer is dialled over uTP first;
when that dial fails (refused, no answer in time, any socket error) the same peer is dialled
again at once over TCP, and a peer TCP then reached is marked as not speaking uTP
(libtorrent's ``torrent_peer::supports_utp = false``) so it is not dialled over uTP again.
Where libtorrent drops uTP for a peer on the first failed uTP dial whatever TCP then does, a
peer that neither transport reached is forgotten here, so a peer that was down (or that only
speaks uTP, like libtorrent with TCP off) is tried over uTP again when it is back. A uTP dial
that worked marks the peer as speaking uTP, which a later TCP connection does not undo. The
memory holds at most *remembered* addresses, the oldest forgotten first. With uTP off
(``--no-utp``) every dial is TCP.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Final, Literal

__all__ = ["REMEMBERED", "TCP", "UTP", "Kind", "TransportChoice"]

Kind = Literal["utp", "tcp"]
UTP: Final = "utp"
TCP: Final = "tcp"
REMEMBERED: Final = 4096
Address = tuple[str, int]


class TransportChoice:
    """The order to dial a peer in, and what each dial taught (see the module's docstring)."""

    def __init__(self, utp: bool = True, remembered: int = REMEMBERED) -> None:
        self.utp = utp
        self.remembered = max(1, remembered)
        self._known: OrderedDict[Address, Kind] = OrderedDict()  # the transport that worked
        self._utp_failed: set[Address] = set()  # uTP failed, TCP not yet known

    def order(self, addr: Address) -> tuple[Kind, ...]:
        """The transports to try for *addr*, first to last."""
        if not self.utp or self._known.get(addr) == TCP:
            return (TCP,)
        return (UTP, TCP)

    def worked(self, addr: Address, kind: Kind) -> None:
        """A connection with *addr* over *kind* was made."""
        self._utp_failed.discard(addr)
        if kind == TCP and self._known.get(addr) == UTP:
            return  # it answered uTP once: a TCP connection does not make it TCP-only
        self._known.pop(addr, None)
        while len(self._known) >= self.remembered:
            self._known.popitem(last=False)
        self._known[addr] = kind

    def failed(self, addr: Address, kind: Kind) -> bool:
        """A dial of *addr* over *kind* failed; True when the next transport is to be tried."""
        if kind == UTP:
            if self._known.get(addr) == UTP:
                del self._known[addr]  # it may be gone: let TCP say what it is now
            if len(self._utp_failed) >= self.remembered:
                self._utp_failed.clear()
            self._utp_failed.add(addr)
            return True
        if addr in self._utp_failed:  # neither worked: nothing learned
            self._utp_failed.discard(addr)
        return False

    def known(self, addr: Address) -> Kind | None:
        """The transport that last worked with *addr* (None: not known)."""
        return self._known.get(addr)

    def __len__(self) -> int:
        return len(self._known)
