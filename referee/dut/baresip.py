"""BaresipDriver: baresip (Debian `baresip-core`, 1.0.0) as a phone DUT.

baresip runs with its `stdio` console and `menu` commands (`/dial`, `/accept`, `/hangup`,
`/transfer`, `/answermode`, `/callfind`), and with `-s`, which prints every SIP message it
sends or receives on the console between colour escapes; those messages are the events'
source. Calls are addressed by their SIP Call-ID (`/callfind` makes one the current call).

Audio: the player writes to /dev/null; the source is the built-in sine generator (aufile
cannot read /dev/null, and a call whose source fails to start is never answered).

Transports: baresip listens on UDP and TCP on the `sip_listen` port and, with a
`sip_certificate`, on TLS one port above it; the account's `;transport=` makes it use the
profile's transport for what it sends. For TLS the driver picks the ports so that the TLS one
is the DUT's port.
"""

from __future__ import annotations

import re
from pathlib import Path

from .driver import DriverError
from .softphone_common import ConsolePhone, SoftCall, _port_free, free_port
from .tls import combined_pem

_MODULE_DIRS = ("/usr/lib/baresip/modules", "/usr/lib/x86_64-linux-gnu/baresip/modules",
                "/usr/local/lib/baresip/modules")
_TRACE_HEAD = re.compile(r"^(UDP|TCP|TLS|WS|WSS) (\S+) -> (\S+)$")
_TRACE_START = "\x1b[36;1m#"
_TRACE_END = "\x1b[;m"


class BaresipDriver(ConsolePhone):
    """baresip 1.0.0 under pexpect."""

    name = "baresip"
    program = "baresip"
    package = "baresip-core"
    transports = ("udp", "tcp", "tls")
    ready_re = re.compile(r"baresip is ready\.")
    quit_command = "/quit"
    answer_modes = ("auto", "manual", "noanswer")
    # Observed on this machine (tests/dut/test_softphones.py): it sends a blind REFER from
    # /transfer, and as transferee it calls the Refer-To target and reports with NOTIFY
    # sipfrag. It has no attended transfer, and answers an INVITE with Replaces as a new call
    # (the replaced call stays up), so neither "attended" nor "replaces" is declared.
    capabilities = frozenset({"transferee", "transferor", "target", "manual_answer"})

    def __init__(self, host: str = "127.0.0.1", port: int = 0, user: str = "dut",
                 answer: str = "auto", *, transport: str = "udp", certificates=None,
                 command_timeout: float = 5.0) -> None:
        super().__init__(host, port, user, answer, transport=transport, certificates=certificates,
                         command_timeout=command_timeout)
        self._trace: list[str] | None = None
        self._trace_dir = ""
        self._trace_next = False
        self._conn_ends: set[str] = set()   # our ends of the TCP/TLS connections baresip opened

    # -- config ---------------------------------------------------------------------------
    @property
    def _listen_port(self) -> int:
        """The `sip_listen` port: the DUT's port, or one below it on TLS."""
        return self.port - 1 if self.transport == "tls" else self.port

    def _choose_port(self) -> int:
        if self.transport != "tls":
            return free_port(self.host)
        for _ in range(50):      # UDP+TCP on p, TCP (TLS) on p+1; the DUT's port is p+1
            base = free_port(self.host)
            if base < 65535 and _port_free(self.host, base + 1):
                return base + 1
        raise DriverError(f"baresip: no pair of free ports (UDP+TCP p, TLS p+1) on {self.host}")

    def _write_config(self, home: Path) -> list[str]:
        modules = next((d for d in _MODULE_DIRS if Path(d, "menu.so").exists()), None)
        if modules is None:
            raise DriverError(f"baresip: no module directory with menu.so among "
                              f"{', '.join(_MODULE_DIRS)}")
        conf = home / ".baresip"
        conf.mkdir()
        mode = "auto" if self.answer_mode == "auto" else "manual"
        tls = [f"sip_certificate {combined_pem(self.certificates)}"] if self.transport == "tls" else []
        (conf / "config").write_text("\n".join([
            f"sip_listen {self.host}:{self._listen_port}",
            *tls,
            f"net_interface {self.host}",          # SDP and RTP on this address only
            "audio_player aufile,/dev/null",
            "audio_alert aufile,/dev/null",
            "audio_source ausine,440",
            "ausrc_srate 48000",                   # what ausine insists on
            "ausrc_channels 2",
            "statmode_default off",                # no status line redrawn every second
            f"module_path {modules}",
            "module stdio.so",
            "module g711.so",
            "module aufile.so",
            "module ausine.so",
            "module_app account.so",
            "module_app menu.so",
            "",
        ]))
        # regint=0: never register; no outbound proxy, no STUN/ICE/TURN modules loaded.
        (conf / "accounts").write_text(
            f"<sip:{self.user}@{self.host}:{self.port};transport={self.transport}>;regint=0;"
            f"answermode={mode}\n")
        (conf / "contacts").write_text("")
        return ["-s", "-f", str(conf)]

    # -- console --------------------------------------------------------------------------
    def _on_console(self, line: str, raw: str) -> None:
        if self._trace is not None:
            if raw.startswith(_TRACE_END):
                lines, self._trace = self._trace, None
                self._on_sip(self._trace_dir, lines)
            else:
                self._trace.append(line)
            return
        if self._trace_next:
            self._trace_next = False
            m = _TRACE_HEAD.match(line)
            if m:
                self._trace_dir = self._direction(m.group(2), m.group(3))
                self._trace = []
            return
        if raw.startswith(_TRACE_START) and line == "#":
            self._trace_next = True

    def _direction(self, src: str, dst: str) -> str:
        """'out' or 'in' for a traced message: baresip prints `src -> dst`, not which side it is.

        Our ends are the listening addresses and the local ends of the connections baresip
        opened itself; a message between two addresses neither of which is known is the first
        one on a connection baresip opened (it connects to send), so its source is ours."""
        ours = {f"{self.host}:{self._listen_port}", f"{self.host}:{self.port}"} | self._conn_ends
        if src in ours:
            return "out"
        if dst in ours:
            return "in"
        self._conn_ends.add(src)
        return "out"

    # -- commands -------------------------------------------------------------------------
    def _apply_answer_mode(self, mode: str) -> None:
        wanted = "auto" if mode == "auto" else "manual"
        self._command(f"/answermode {wanted}", rf"Answer mode changed to: {wanted}",
                      r"Invalid answer mode")

    def _select(self, call: SoftCall) -> None:
        self._command(f"/callfind {call.sip_call_id}", r"setting current call: ",
                      r"call not found")

    def _do_dial(self, uri: str) -> None:
        # baresip appends the account's ;transport= to what it dials: a URI that already has
        # it would go out with the parameter twice
        uri = re.sub(rf";transport={self.transport}(?=[;?]|$)", "", uri, flags=re.IGNORECASE)
        self._command(f"/dial {uri}", rf"call: connecting to '{re.escape(uri)}[;']",
                      r"ua_connect failed|could not|invalid|Invalid")

    def _do_answer(self, call: SoftCall) -> None:
        self._select(call)
        self._command("/accept", r"call: answering call .* with 200|answering incoming call",
                      r"could not|no such")

    def _do_reject(self, call: SoftCall, code: int) -> None:
        if code != 486:
            raise DriverError(f"baresip: can only reject with 486 (its /hangup on a ringing "
                              f"call), not {code}")
        self._select(call)
        self._command("/hangup", r"rejecting incoming call", None)

    def _do_hangup(self, call: SoftCall) -> None:
        self._select(call)
        self._command("/hangup", r"terminate call|rejecting incoming call|call: hang ?up",
                      None)

    def _do_transfer(self, call: SoftCall, target: str) -> None:
        self._select(call)
        self._command(f"/transfer {target}", rf"transferring call to {re.escape(target)}",
                      r"transfer failure|could not|call not found")
