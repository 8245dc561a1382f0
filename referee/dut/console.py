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
    """A console program of the profile's `launch`. It declares its transports in the profile
    (`transports`, default UDP only); the launch command gets the chosen one as {transport}
    and, on TLS, a test certificate as {tls_cert} / {tls_key}."""

    name = "console"
    transports = ("udp",)

    def __init__(self, launch: list[str], host: str = "127.0.0.1", port: int = 0, user: str = "dut",
                 answer: str = "auto", capabilities: frozenset[str] = frozenset(),
                 transports: tuple[str, ...] = ("udp",), **kwargs) -> None:
        super().__init__(host=host, port=port, user=user, answer=answer, **kwargs)
        self.launch = launch
        self.capabilities = capabilities
        self.transports = tuple(transports)

    @classmethod
    def find_program(cls) -> str:
        """The console program comes from the profile's `launch` (DutSession checks it)."""
        return sys.executable

    def _console_command(self) -> tuple[str, list[str]]:
        certs = self.certificates
        argv = expand(self.launch, host=self.host, port=str(self.port), user=self.user,
                      answer=self.answer_mode, python=sys.executable, transport=self.transport,
                      tls_cert=str(certs.cert_file) if certs else "", tls_key=str(certs.key_file) if certs else "")
        return argv[0], argv[1:]
