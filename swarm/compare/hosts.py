"""Where ``swarm compare``'s children run and what caps their links: all on 127.0.0.1 under
swarm's own rate limits, or each in a host of a :class:`~swarm.compare.netlab.NetLab`."""

from __future__ import annotations

from swarm.compare.netlab import TCP_PAYLOAD_SHARE, Host, NetLab


class Net:
    """Where the children run and what caps them: all on 127.0.0.1, capped by swarm's own
    token buckets (``--max-upload-rate``), or each in a host of a :class:`NetLab`, its links
    capped by the kernel (tc tbf) and swarm's own caps left off."""

    def __init__(self, lab: NetLab | None) -> None:
        self.lab = lab
        self._hosts: dict[str, Host] = {}

    async def host(self, name: str, up: int | None = None, down: int | None = None) -> Host | None:
        """The lab's host *name* (made the first time, with these caps); None without a lab."""
        if self.lab is None:
            return None
        if name not in self._hosts:
            self._hosts[name] = await self.lab.add_host(name, up=link(up), down=link(down))
        return self._hosts[name]

    @staticmethod
    def address(host: Host | None) -> str:
        return "127.0.0.1" if host is None else host.address

    def caps(self, up: int | None, down: int | None) -> list[str]:
        """swarm's own cap options, or none when the kernel caps the links."""
        if self.lab is not None:
            return []
        out = [] if up is None else ["--max-upload-rate", str(up)]
        return out + ([] if down is None else ["--max-download-rate", str(down)])


def link(rate: int | None) -> int | None:
    """A link's cap for TCP data to flow at *rate*: tbf counts whole frames, headers too."""
    return None if rate is None else round(rate / TCP_PAYLOAD_SHARE)
