"""The processes ``swarm compare`` starts: ``python -m swarm COMMAND ... --status-fd N``, each
telling its state through :mod:`swarm.status` lines on a pipe of its own. Their human output
goes nowhere; the last lines of stderr explain a child that dies without saying why."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import sys
from collections.abc import Callable, Mapping

from swarm.compare.netlab import Host
from swarm.errors import CompareError
from swarm.status import MAX_LINE, Event, Status, decode

log = logging.getLogger(__name__)

STOP_TIMEOUT = 10.0  # seconds from SIGTERM to SIGKILL


async def terminate(proc: asyncio.subprocess.Process, timeout: float = STOP_TIMEOUT) -> None:
    """SIGTERM a process we started, then SIGKILL if it is still there after *timeout*."""
    if proc.returncode is None:
        with contextlib.suppress(ProcessLookupError):
            proc.send_signal(signal.SIGTERM)
        try:
            async with asyncio.timeout(timeout):
                await proc.wait()
        except TimeoutError:
            proc.kill()
            await proc.wait()


class PhaseTimeout(CompareError):
    """A child did not say what was awaited within its time (a phase's ``--timeout``)."""


class Child:
    """One ``swarm`` child process and the status lines it has sent."""

    def __init__(
        self,
        name: str,
        proc: asyncio.subprocess.Process,
        status: asyncio.StreamReader,
        transport: asyncio.ReadTransport,
    ) -> None:
        self.name = name
        self.proc = proc
        self.statuses: list[Status] = []
        self.errors: list[str] = []  # the first lines of stderr
        # progress lines (swarm compare --web) go here, not into statuses
        self.on_progress: Callable[[Status], None] | None = None
        self._status = status
        self._transport = transport
        self._changed = asyncio.Event()
        self._reader = asyncio.ensure_future(self._read_status())
        self._stderr = asyncio.ensure_future(self._read_stderr())

    @classmethod
    async def start(
        cls,
        name: str,
        *args: str,
        stdin: bool = False,
        host: Host | None = None,
        env: Mapping[str, str] | None = None,
    ) -> Child:
        """Start ``python -m swarm -q ARGS --status-fd N`` with a pipe's write end as N (in
        the network namespace of *host*, a lab's host, when given; *env*: variables added to
        ours)."""
        loop = asyncio.get_running_loop()
        read_fd, write_fd = os.pipe()
        argv = [sys.executable, "-m", "swarm", "-q", *args, "--status-fd", str(write_fd)]
        if host is not None:
            argv = host.argv(*argv)  # ip netns exec keeps the pipe and becomes the child
        try:
            proc = await asyncio.create_subprocess_exec(
                *argv,
                pass_fds=(write_fd,),
                stdin=asyncio.subprocess.PIPE if stdin else asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.DEVNULL,
                stderr=asyncio.subprocess.PIPE,
                start_new_session=True,  # Ctrl-C in the terminal reaches compare only
                env={**os.environ, **env} if env else None,
            )
        except BaseException:
            os.close(read_fd)
            raise
        finally:
            os.close(write_fd)  # the child holds it now: end of file when the child is gone
        status = asyncio.StreamReader(limit=MAX_LINE, loop=loop)
        transport, _ = await loop.connect_read_pipe(
            lambda: asyncio.StreamReaderProtocol(status, loop=loop),
            os.fdopen(read_fd, "rb", buffering=0),
        )
        return cls(name, proc, status, transport)

    async def _read_status(self) -> None:
        try:
            async for line in self._status:
                status = decode(line)
                if status.event is Event.PROGRESS:
                    if self.on_progress is not None:
                        try:
                            self.on_progress(status)
                        except Exception:  # the page is an extra: never the run's end
                            log.debug("%s: progress line not taken", self.name, exc_info=True)
                    continue
                self.statuses.append(status)
                self._changed.set()
        finally:
            self._changed.set()

    async def _read_stderr(self) -> None:
        assert self.proc.stderr is not None
        async for raw in self.proc.stderr:
            line = raw.decode(errors="replace").rstrip("\n")
            if line and len(self.errors) < 20:
                self.errors.append(line)

    async def wait_for(self, event: Event, timeout: float, index: int | None = None) -> Status:
        """The first status line of *event* (about downloader *index* of a group, if given);
        :class:`CompareError` if the child fails first."""
        seen = 0
        try:
            async with asyncio.timeout(timeout):
                while True:
                    for status in self.statuses[seen:]:
                        if status.event is Event.ERROR:
                            raise CompareError(f"{self.name} stopped: {status.message}")
                        if status.event is event and (index is None or status.index == index):
                            return status
                    seen = len(self.statuses)
                    if self._reader.done():
                        await self._died()
                    self._changed.clear()
                    await self._changed.wait()
        except TimeoutError:
            raise PhaseTimeout(
                f"{self.name}: no {event.value} within {timeout:g} s (--timeout)"
            ) from None

    async def _died(self) -> None:
        exc = self._reader.exception()
        if isinstance(exc, CompareError):
            raise CompareError(f"{self.name}: {exc}")
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(STOP_TIMEOUT):
                await self._stderr
                await self.proc.wait()
        why = self.errors[-1] if self.errors else f"exit code {self.proc.returncode}"
        raise CompareError(f"{self.name} stopped: {why}")

    def usage(self) -> tuple[float, int] | None:
        """CPU seconds the process has used and its peak RSS in bytes, from /proc (Linux;
        None elsewhere or once it is gone)."""
        try:
            with open(f"/proc/{self.proc.pid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            with open(f"/proc/{self.proc.pid}/status") as f:
                hwm = next((line for line in f if line.startswith("VmHWM:")), "VmHWM: 0 kB")
        except OSError:
            return None
        cpu = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
        return cpu, int(hwm.split()[1]) * 1024

    def go(self) -> None:
        """The line on stdin that a ``fetch --start-on-stdin`` waits for."""
        self.send("go")

    def send(self, line: str) -> None:
        """One line on the child's stdin (``go``; ``leave I`` and ``back I`` to a
        ``fetch-group``); nothing if the child has gone."""
        assert self.proc.stdin is not None
        if self.proc.returncode is None and not self.proc.stdin.is_closing():
            self.proc.stdin.write(line.encode() + b"\n")

    async def stop(self) -> None:
        """SIGTERM, then SIGKILL if it is still there after :data:`STOP_TIMEOUT`."""
        await terminate(self.proc)
        self._transport.close()
        for task in (self._reader, self._stderr):
            task.cancel()
        await asyncio.gather(self._reader, self._stderr, return_exceptions=True)
