"""What a uTP connection (:mod:`swarm.utp.connection`) tells its owner: the connection's
:class:`State`, the :data:`Event` s for the application, and the :class:`Output` of each call
(datagrams for the peer and events)."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field

__all__ = ["Closed", "Connected", "Data", "Eof", "Event", "Output", "State"]


class State(enum.Enum):
    """BEP 29's connection states (the acceptor is connected as soon as it answers a SYN)."""

    SYN_SENT = "syn-sent"
    CONNECTED = "connected"
    FIN_SENT = "fin-sent"
    CLOSED = "closed"
    RESET = "reset"


@dataclass(slots=True, frozen=True)
class Connected:
    """The handshake is done (the initiator's SYN was acked; at once for the acceptor)."""


@dataclass(slots=True, frozen=True)
class Data:
    """Bytes of the peer's stream, in order (a view of the datagram on the shell's batch
    path, which joins a batch's views into bytes before the protocol sees them)."""

    data: bytes | memoryview


@dataclass(slots=True, frozen=True)
class Eof:
    """The peer's FIN and everything before it arrived: no more data will come."""


@dataclass(slots=True, frozen=True)
class Closed:
    """The connection is over: *reason* None when closed cleanly (our FIN acked, or our own
    abort), else why: ``connection refused``, ``connection reset by peer``, ``timed out``."""

    reason: str | None = None


Event = Connected | Data | Eof | Closed


@dataclass(slots=True)
class Output:
    """What a call produced: datagrams for the peer's address and events for the app."""

    datagrams: list[bytes] = field(default_factory=list)
    events: list[Event] = field(default_factory=list)
