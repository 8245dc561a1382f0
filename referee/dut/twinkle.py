"""TwinkleDriver: twinkle's console mode (Debian `twinkle-console`, 1.10.2) as a phone DUT.

The Debian package installs the console build as `twinkle-console` (there is no `twinkle`
program); it takes user profile file names as arguments (an option such as `-c` is read as a
profile name). It needs a system config (`~/.twinkle/twinkle.sys`) and the user profile
(`~/.twinkle/<user>.cfg`) or it exits at once; the driver writes both and names the profile. Twinkle logs every SIP
message to `~/.twinkle/twinkle.log`, which the driver tails for the events.

Twinkle is a two-line phone: commands act on the active line, and switching lines puts the
call on the old line on hold (re-INVITE). The driver names calls by line number, switching
lines when a command targets a call on the other one. Twinkle binds its SIP port on all
addresses (0.0.0.0), UDP and TCP, without SO_REUSEADDR; it has no bind-address setting, so no
other program can use that port on any address of the host (or network namespace).

Transports: UDP or TCP (the user profile's `sip_transport`); twinkle has no SIP over TLS.
"""

from __future__ import annotations

import re
import time
from pathlib import Path
from typing import Callable

from .driver import DriverError
from .softphone_common import ConsolePhone, SoftCall, bare_uri, free_port, free_port_block

_LOG_HEAD = re.compile(r"^\+\+\+ \d{1,2}-\d{1,2}-\d{4} ")   # day and month without a leading 0
_LOG_SIP = re.compile(r"^(Send to|Received from): ")
_INCOMING = re.compile(r"Line (\d): incoming call")
_FROM = re.compile(r"(?:^|> )From:\s+(.+)$")
_XFER = re.compile(r"Line (\d): transferring call to (\S+)")
_ACTIVE = re.compile(r"Active line is: (\d)|Line (\d) is now active")
_LINES = ("1", "2")


class TwinkleDriver(ConsolePhone):
    """twinkle 1.10.2 (`twinkle -c`) under pexpect."""

    name = "twinkle"
    program = "twinkle-console"
    package = "twinkle-console"
    transports = ("udp", "tcp")
    transport_limits = {"tls": "twinkle 1.10 has no SIP over TLS (its sip_transport is udp, tcp or auto)"}
    binds_all_addresses = True
    ready_re = re.compile(r"Twinkle> ?$")
    quit_command = "quit"
    answer_modes = ("auto", "manual", "noanswer")
    # Observed on this machine (tests/dut/test_softphones.py): blind REFER from `transfer`,
    # attended REFER with Replaces from `transfer -l` (only towards a party that announced
    # Supported: replaces); as transferee it calls the target and reports with NOTIFY
    # sipfrag, or, for a REFER with Refer-Sub: false, answers 202 with Refer-Sub: false and
    # sends no NOTIFY (it ends the transferred call itself, with its BYE sent before the
    # final NOTIFY, which then carries a lower CSeq). An INVITE with Replaces makes it log
    # "End call due to Replaces header", send 100 Trying and then hang (no further SIP, no
    # console), so "replaces" is not declared. Declining REFER (603) works only as a start-up
    # setting (refer="decline"), so "decline_refer" is not declared either.
    capabilities = frozenset({"transferee", "transferor", "attended", "target", "refer_sub",
                              "manual_answer"})

    refer_policies = ("accept", "decline")

    def __init__(self, host: str = "127.0.0.1", port: int = 0, user: str = "dut",
                 answer: str = "auto", *, refer: str = "accept", transport: str = "udp",
                 certificates=None, command_timeout: float = 5.0) -> None:
        super().__init__(host, port, user, answer, transport=transport, certificates=certificates,
                         command_timeout=command_timeout)
        if refer not in self.refer_policies:
            raise DriverError(f"twinkle: refer must be one of {', '.join(self.refer_policies)}, "
                              f"got {refer!r}")
        self.refer_policy = refer
        self._active = "1"
        self._incoming_line: str | None = None
        self._entry: list[str] | None = None     # log entry being read
        self._msg: list[str] | None = None
        self._msg_dir = ""

    # -- config ---------------------------------------------------------------------------
    def _choose_port(self) -> int:
        return free_port("0.0.0.0")     # twinkle binds all addresses

    def _write_config(self, home: Path) -> list[str]:
        rtp = free_port_block("0.0.0.0", 12)
        conf = home / ".twinkle"
        conf.mkdir()
        (conf / "twinkle.sys").write_text("\n".join([
            "dev_ringtone=alsa:null",
            "dev_speaker=alsa:null",
            "dev_mic=alsa:null",
            "validate_audio_dev=no",
            "log_max_size=20",
            "log_show_sip=yes",
            "log_show_stun=no",
            "log_show_memory=no",
            "log_show_debug=no",
            "call_waiting=yes",
            f"start_user_profile={self.user}",
            f"sip_port={self.port}",
            f"rtp_port={rtp}",
            "play_ringtone=no",
            "play_ringback=no",
            "",
        ]))
        (conf / f"{self.user}.cfg").write_text("\n".join([
            f"user_name={self.user}",
            f"user_domain={self.host}",
            f"user_display={self.user}",
            "register_at_startup=no",
            "codecs=g711u,g711a",
            f"sip_transport={self.transport}",
            f"allow_refer={'yes' if self.refer_policy == 'accept' else 'no'}",  # no: 603
            "ask_user_to_refer=no",
            "referrer_hold=no",
            "referee_hold=no",
            "ext_replaces=yes",
            "stun_server=",
            "nat_public_ip=",
            "enable_nat_keepalive=no",
            "pres_publish_startup=no",   # else a PUBLISH goes to <domain>:5060 at start
            "mwi_sollicited=no",
            "timer_noanswer=120",
            "",
        ]))
        return [f"{self.user}.cfg"]

    def _exit_hint(self) -> str:
        with self._cond:
            tail = "\n".join(self._tail)
        if not re.search(r"Failed to create a (UDP|TCP) socket \(SIP\) on port", tail):
            return ""
        if not re.search(r"strerror_r is not available: 98\b", tail):   # 98: EADDRINUSE
            return f"it could not open its SIP socket on port {self.port}"
        return (f"port {self.port} is already in use (errno 98, EADDRINUSE): twinkle binds "
                f"its SIP port on every address (0.0.0.0), so any program using port {self.port} on any "
                f"address of this host or network namespace blocks it; give it a port nobody else uses")

    def _trace_files(self) -> list[tuple[Path, Callable[[str | None], None]]]:
        assert self.home is not None
        return [(self.home / ".twinkle" / "twinkle.log", self._on_log_line)]

    def _after_start(self) -> None:
        self._apply_answer_mode(self.answer_mode)

    # -- console and log ----------------------------------------------------------------------
    def _on_console(self, line: str, raw: str) -> None:
        m = _INCOMING.search(line)
        if m:
            self._incoming_line = m.group(1)
            return
        m = _FROM.search(line)
        if m and self._incoming_line is not None:
            self._bind_ref(bare_uri(m.group(1)), self._incoming_line)
            self._incoming_line = None
            return
        m = _XFER.search(line)
        if m:       # as transferee twinkle calls the target from the same line
            self._bind_ref(m.group(2), m.group(1))
            return
        m = _ACTIVE.search(line)
        if m:
            with self._cond:
                self._active = m.group(1) or m.group(2)

    def _on_log_line(self, line: str | None) -> None:
        if line is None:
            return
        if _LOG_HEAD.match(line):
            self._entry, self._msg = [], None
            return
        if self._entry is None:
            return
        if line == "---":
            if self._msg is not None:
                self._on_sip(self._msg_dir, self._msg)
            self._entry, self._msg = None, None
            return
        if not self._entry and self._msg is None:
            m = _LOG_SIP.match(line)
            if m:
                self._msg_dir = "out" if m.group(1) == "Send to" else "in"
                self._msg = []
                return
        if self._msg is not None:
            self._msg.append(line)
        else:
            self._entry.append(line)

    def set_refer_policy(self, policy: str) -> None:
        """Twinkle reads its REFER policy (profile `allow_refer`) at start only: set it before
        start() or with refer= in the constructor ('decline' answers REFER with 603)."""
        if policy not in self.refer_policies:
            raise DriverError(f"twinkle: refer policy {policy!r} not supported "
                              f"(supported: {', '.join(self.refer_policies)})")
        if self._child is not None and policy != self.refer_policy:
            raise DriverError(f"twinkle: cannot switch the refer policy to {policy!r} while "
                              f"running (twinkle reads it at start); create the driver with "
                              f"refer={policy!r}")
        self.refer_policy = policy

    # -- commands -------------------------------------------------------------------------
    def _apply_answer_mode(self, mode: str) -> None:
        if mode == "auto":
            self._command("auto_answer -a on", r"Auto answer enabled")
        else:
            self._command("auto_answer -a off", r"Auto answer disabled")

    def _activate(self, line: str) -> None:
        """Make `line` the active one. Twinkle then holds the call on the old line and
        retrieves the one on the new line (re-INVITEs); it ignores commands given before
        those complete, so wait for them."""
        with self._cond:
            if self._active == line:
                return
            settling = [c.ref for c in self._calls if c.state == "confirmed" and c.ref]
            mark = len(self._lines)
        self._command(f"line {line}", rf"Line {line} is now active", r"Usage|Invalid")
        deadline = time.monotonic() + self.command_timeout
        for ref in settling:
            self._wait_output(rf"Line {ref}: re-INVITE (successful|failed)", None, mark,
                              deadline, f"line {line} (hold/retrieve on line {ref})")

    def _line_of(self, call: SoftCall, action: str) -> str:
        ref = self._ref_of(call, action)
        self._activate(ref)
        return ref

    def _do_dial(self, uri: str) -> None:
        with self._cond:
            busy = {c.ref for c in self._calls if c.live and c.ref}
            line = self._active if self._active not in busy else next(
                (n for n in _LINES if n not in busy), None)
        if line is None:
            raise DriverError(f"twinkle: cannot dial {uri}: both lines are busy")
        self._activate(line)
        self._bind_ref(uri, line)
        self._command(f"call {uri}")

    def _do_answer(self, call: SoftCall) -> None:
        self._line_of(call, "answer")
        self._command("answer")

    def _do_reject(self, call: SoftCall, code: int) -> None:
        if code != 486:
            raise DriverError(f"twinkle: can only reject with 486 (its `reject`), not {code}")
        self._line_of(call, "reject")
        self._command("reject")

    def _do_hangup(self, call: SoftCall) -> None:
        self._line_of(call, "hang up")
        self._command("bye")

    def _do_transfer(self, call: SoftCall, target: str) -> None:
        line = self._line_of(call, "transfer")
        mark = self._refer_mark()
        self._command(f"transfer {target}")
        self._wait_refer_sent(mark, call, f"transfer {target} (line {line})")

    def _do_transfer_attended(self, call: SoftCall, consult: SoftCall) -> None:
        other = self._ref_of(consult, "transfer to")
        line = self._line_of(call, "transfer")
        if other == line:
            raise DriverError(f"twinkle: calls {call.handle} and {consult.handle} are both "
                              f"on line {line}")
        mark = self._refer_mark()
        self._command("transfer -l")
        # twinkle silently refuses when the consulted party did not announce Replaces support
        self._wait_refer_sent(mark, call, f"transfer -l (line {line} to line {other}; twinkle "
                                          f"sends it only if {consult.remote} supports Replaces)")
