"""The current-calls table: what `call list/show/kill` and `stats` read.

The switching core adds a call at admission and removes it at its end; the admin shell
only reads it and asks for a kill through `kill()`, never touching protocol objects.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable

from attrs import define


@define
class CallInfo:
    """A live call as the shell shows it (mutable: the switching core updates it)."""

    id: str
    caller: str
    callee: str
    caller_gateway: str = ""
    callee_gateway: str = ""
    caller_ip: str = ""
    callee_ip: str = ""
    account: str = ""
    state: str = "routing"  # routing, ringing, early, talking, ending
    start_ms: int = 0
    connect_ms: int | None = None

    def duration_ms(self, now_ms: int) -> int:
        """Talk time so far (0 until answered)."""
        return 0 if self.connect_ms is None else max(0, now_ms - self.connect_ms)


class CurrentCalls:
    """Calls from admission to their end, with a sliding one-second CPS count."""

    def __init__(self) -> None:
        self._calls: dict[str, CallInfo] = {}
        self._killers: dict[str, Callable[[], None]] = {}
        self._arrivals: deque[int] = deque()
        self.total = 0

    def __len__(self) -> int:
        return len(self._calls)

    def add(self, info: CallInfo, kill: Callable[[], None]) -> None:
        self._calls[info.id] = info
        self._killers[info.id] = kill
        self._arrivals.append(info.start_ms)
        self.total += 1

    def remove(self, call_id: str) -> None:
        self._calls.pop(call_id, None)
        self._killers.pop(call_id, None)

    def get(self, call_id: str) -> CallInfo | None:
        return self._calls.get(call_id)

    def list(self) -> list[CallInfo]:
        return sorted(self._calls.values(), key=lambda c: (c.start_ms, c.id))

    def kill(self, call_id: str) -> bool:
        """Ask the switching core to end the call (server end reason); False if unknown."""
        kill = self._killers.get(call_id)
        if kill is None:
            return False
        kill()
        return True

    def cps(self, now_ms: int) -> int:
        """Calls admitted in the last second."""
        while self._arrivals and self._arrivals[0] <= now_ms - 1000:
            self._arrivals.popleft()
        return len(self._arrivals)
