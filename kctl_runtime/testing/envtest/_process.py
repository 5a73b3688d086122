"""One child process of the control plane: spawn, liveness, log tail, terminate-then-kill.

Each process runs in a session of its own (so a Ctrl-C in the terminal reaches the test runner,
which then stops the plane in order, instead of killing etcd under the API server) with its output in
a log file. A process can also be re-attached from a pid in a state file (the detached command), in
which case it is only signalled if its command line still names the plane's folder, so a recycled
pid is never hit.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Iterable, Sequence
from pathlib import Path


class Process:
    """A running (or finished) control-plane program."""

    def __init__(
        self,
        name: str,
        pid: int,
        log_path: Path,
        *,
        popen: subprocess.Popen[bytes] | None = None,
        marker: str = "",
    ) -> None:
        self.name = name
        self.pid = pid
        self.log_path = log_path
        self._popen = popen
        #: A string the command line must contain for a re-attached pid to be ours.
        self._marker = marker

    @classmethod
    def spawn(cls, name: str, argv: Sequence[str | Path], log_path: Path, *, append: bool = False) -> Process:
        log_path.parent.mkdir(parents=True, exist_ok=True)
        with log_path.open("ab" if append else "wb") as log:
            popen = subprocess.Popen(
                [str(a) for a in argv],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                close_fds=True,
            )
        return cls(name, popen.pid, log_path, popen=popen)

    @classmethod
    def attach(cls, name: str, pid: int, log_path: Path, *, marker: str) -> Process:
        """A process started by another Python process (the detached command)."""
        return cls(name, pid, log_path, marker=marker)

    def alive(self) -> bool:
        if self._popen is not None:
            return self._popen.poll() is None
        try:
            cmdline = Path(f"/proc/{self.pid}/cmdline").read_bytes()
            stat = Path(f"/proc/{self.pid}/stat").read_text()
        except OSError:
            return False
        # A zombie (state Z after the ")" that closes the command name) has exited.
        return self._marker.encode() in cmdline and stat.rpartition(")")[2].split()[:1] != ["Z"]

    @property
    def returncode(self) -> int | None:
        return None if self._popen is None else self._popen.poll()

    def signal(self, sig: signal.Signals) -> None:
        if not self.alive():
            return
        with contextlib.suppress(ProcessLookupError, PermissionError):
            # Its own session, so its pid is its process group: take any helpers down with it.
            os.killpg(self.pid, sig)

    def log_tail(self, lines: int = 8, max_chars: int = 1500) -> str:
        """The last non-empty lines of its log on one line (`` | ``-joined), for error messages."""
        try:
            with self.log_path.open("rb") as log:
                log.seek(0, os.SEEK_END)
                log.seek(max(0, log.tell() - 16384))
                text = log.read().decode(errors="replace")
        except OSError as exc:
            return f"(no log: {exc})"
        tail = [line.strip() for line in text.splitlines() if line.strip()][-lines:]
        joined = " | ".join(tail) or "(empty log)"
        return joined if len(joined) <= max_chars else "..." + joined[-max_chars:]

    def describe_exit(self) -> str:
        code = self.returncode
        how = "exited" if code is None else f"exited with code {code}"
        return f"{self.name} {how}; log {self.log_path}: {self.log_tail()}"


def stop_all(processes: Iterable[Process], timeout: float) -> list[str]:
    """SIGTERM each, wait up to ``timeout`` s, SIGKILL what is left; names of those killed."""
    procs = [p for p in processes if p.alive()]
    for proc in procs:
        proc.signal(signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and any(p.alive() for p in procs):
        time.sleep(0.02)
    killed = [p for p in procs if p.alive()]
    for proc in killed:
        proc.signal(signal.SIGKILL)
    deadline = time.monotonic() + 5.0
    while time.monotonic() < deadline and any(p.alive() for p in killed):
        time.sleep(0.02)
    return [p.name for p in killed]
