"""ConsoleDriver: any program that speaks the reference phone's console protocol.

A profile with `driver = "console"` and a `launch` command starts that program instead of the
reference phone and drives it with the same commands and events (READY / OK / ERR / EVENT lines,
see referee/dut/refphone/protocol.py). This is how test phones with deliberate faults, or a
vendor's own CLI wrapper, become drivable DUTs.
"""

from __future__ import annotations

import sys

from .launcher import expand
from .refphone.driver import RefPhoneDriver


class ConsoleDriver(RefPhoneDriver):
    name = "console"

    def __init__(self, launch: list[str], host: str = "127.0.0.1", port: int = 0, user: str = "dut",
                 answer: str = "auto", capabilities: frozenset[str] = frozenset(), **kwargs) -> None:
        super().__init__(host=host, port=port, user=user, answer=answer, **kwargs)
        self.launch = launch
        self.capabilities = capabilities

    def _console_command(self) -> tuple[str, list[str]]:
        argv = expand(self.launch, host=self.host, port=str(self.port), user=self.user,
                      answer=self.answer_mode, python=sys.executable)
        return argv[0], argv[1:]
