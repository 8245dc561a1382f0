"""LinphoneDriver: linphonec (Debian `linphone-cli`, liblinphone 5.1) as a phone DUT.

linphonec runs with a generated rc file (`-c`) and writes its full log, every SIP message
included, to a file (`-d 6 -l`); the driver tails that file for the events. Its console
names each call with a number ("assigned id N"), which the commands use.

Config notes (all verified): without `ipv6_migration_done=1` liblinphone turns IPv6 on and
then never listens on an IPv4 bind address; without `guess_hostname=0` it rewrites the
identity's host to the default-route address; `[rtp] bind_address` keeps SDP and RTP on the
loopback address (otherwise it advertises the default-route address).

Transports: UDP or TCP, only the profile's one (`sip_port` / `sip_tcp_port`, the other 0).
TLS is refused: linphonec 5.1 opens a TLS listening socket but belle-sip drops every incoming
TLS connection ("New connection arriving on TLS, not handled"), so it cannot be called on TLS.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Callable

from .driver import DriverError
from .softphone_common import ConsolePhone, SoftCall, free_port_block

_LOG_HEAD = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d:\d{3} ")
_LOG_RX = re.compile(r"received \[\d+\] new bytes from \[")
_LOG_TX = re.compile(r"message sent to \[")
_PAUSE = re.compile(r"Call (\d+) with .* is now paused\.|Resuming call (\d+) with")
_ASSIGNED = re.compile(r"(?:Receiving new incoming call from|Establishing call id to) (.+), "
                       r"assigned id (\d+)")


class LinphoneDriver(ConsolePhone):
    """linphonec 5.1 under pexpect."""

    name = "linphone"
    program = "linphonec"
    package = "linphone-cli"
    transports = ("udp", "tcp")
    transport_limits = {"tls": "linphonec 5.1 (belle-sip) accepts no incoming TLS connection (its log says "
                               "'New connection arriving on TLS, not handled')"}
    ready_re = re.compile(r"linphonec> ?$")
    quit_command = "quit"
    answer_modes = ("auto", "manual", "noanswer")
    # Observed on this machine (tests/dut/test_softphones.py): blind REFER from `transfer`,
    # attended REFER with Replaces from `transfer A --to-call B`; as transferee it puts the
    # call on hold, calls the target and reports with NOTIFY sipfrag; it honours an INVITE
    # with Replaces (answers it and ends the replaced call). Caveats: linphonec drops the
    # port from the To/From URIs it sends, and its attended Refer-To is the target's To URI,
    # so a transferee dials the target's port 5060; it ignores Refer-Sub: false (still
    # NOTIFYs), so "refer_sub" is not declared.
    capabilities = frozenset({"transferee", "transferor", "attended", "target", "replaces",
                              "manual_answer"})

    def __init__(self, host: str = "127.0.0.1", port: int = 0, user: str = "dut",
                 answer: str = "auto", *, transport: str = "udp", certificates=None,
                 command_timeout: float = 5.0) -> None:
        super().__init__(host, port, user, answer, transport=transport, certificates=certificates,
                         command_timeout=command_timeout)
        self._msg: list[str] | None = None
        self._msg_dir = ""
        self._paused: set[str] = set()     # call numbers we put on hold

    # -- config ---------------------------------------------------------------------------
    def _write_config(self, home: Path) -> list[str]:
        rtp = free_port_block(self.host, 8)
        (home / ".local" / "share" / "linphone").mkdir(parents=True)
        rc = home / "linphonerc"
        rc.write_text("\n".join([
            "[sip]",
            f'contact="{self.user}" <{self.sip_uri}>',
            "guess_hostname=0",
            f"sip_port={self.port if self.transport == 'udp' else 0}",
            f"sip_tcp_port={self.port if self.transport == 'tcp' else 0}",
            "sip_tls_port=0",
            f"bind_address={self.host}",
            "use_ipv6=0",
            "ipv6_migration_done=1",
            "register_only_when_network_is_up=0",
            "inc_timeout=120",
            "",
            "[rtp]",
            f"bind_address={self.host}",
            f"audio_rtp_port={rtp}",
            f"video_rtp_port={rtp + 2}",
            f"text_rtp_port={rtp + 4}",
            "",
            "[net]",
            "firewall_policy=0",          # no NAT traversal helpers (STUN/ICE/TURN/uPnP)
            "",
            "[sound]",
            "capture_dev_id=null",
            "playback_dev_id=null",
            "ringer_dev_id=null",
            "echocancellation=0",
            "",
            "[video]",
            "enabled=0",
            "capture=0",
            "display=0",
            "automatically_initiate=0",
            "automatically_accept=0",
            "",
        ]))
        return ["-c", str(rc), "-d", "6", "-l", str(home / "linphone.log")]

    def _trace_files(self) -> list[tuple[Path, Callable[[str | None], None]]]:
        assert self.home is not None
        return [(self.home / "linphone.log", self._on_log_line)]

    def _after_start(self) -> None:
        self._apply_answer_mode(self.answer_mode)

    # -- console and log ----------------------------------------------------------------------
    def _on_console(self, line: str, raw: str) -> None:
        m = _ASSIGNED.search(line)
        if m:
            self._bind_ref(m.group(1), m.group(2))
            return
        m = _PAUSE.search(line)
        if m:
            with self._cond:
                if m.group(1):
                    self._paused.add(m.group(1))
                else:
                    self._paused.discard(m.group(2))

    def _on_log_line(self, line: str | None) -> None:
        if line is None or _LOG_HEAD.match(line):
            if self._msg is not None:
                lines, self._msg = self._msg, None
                self._on_sip(self._msg_dir, lines)
            if line is None:
                return
            if _LOG_RX.search(line):
                self._msg, self._msg_dir = [], "in"
            elif _LOG_TX.search(line):
                self._msg, self._msg_dir = [], "out"
        elif self._msg is not None:
            self._msg.append(line)

    # -- commands -------------------------------------------------------------------------
    def _apply_answer_mode(self, mode: str) -> None:
        if mode == "auto":
            self._command("autoanswer enable", r"Auto answer enabled")
        else:
            self._command("autoanswer disable", r"Auto answer disabled")

    def _do_dial(self, uri: str) -> None:
        # linphonec refuses a second call while one runs: hold it first, as a user would.
        with self._cond:
            running = [c.ref for c in self._calls if c.live and c.state == "confirmed"
                       and c.ref is not None and c.ref not in self._paused]
        for ref in running:
            self._command(f"pause {ref}", rf"Call {ref} with .* is now paused|"
                                          r"you can only pause when a call is in process",
                          r"no call with id")
        self._command(f"call {uri}", r"Establishing call id to .*assigned id \d+",
                      r"Error from linphone_core_invite|Syntax error|"
                      r"Terminate or hold on the current call first")

    def _do_answer(self, call: SoftCall) -> None:
        ref = self._ref_of(call, "answer")
        self._command(f"answer {ref}", rf"Call {ref} with .* connected",
                      r"Fail to accept|no call with id|Syntax error")

    def _do_reject(self, call: SoftCall, code: int) -> None:
        if code != 603:
            raise DriverError(f"linphone: can only reject with 603 (its `terminate` on a "
                              f"ringing call), not {code}")
        ref = self._ref_of(call, "reject")
        self._command(f"terminate {ref}", rf"Call {ref} with .* ended",
                      r"Could not stop|no call with id|Syntax error")

    def _do_hangup(self, call: SoftCall) -> None:
        ref = self._ref_of(call, "hang up")
        self._command(f"terminate {ref}", rf"Call {ref} with .* ended",
                      r"Could not stop|no call with id|Syntax error")

    def _do_transfer(self, call: SoftCall, target: str) -> None:
        ref = self._ref_of(call, "transfer")
        # linphonec prints nothing when a REFER leaves; the log shows it.
        mark = self._refer_mark()
        self._command(f"transfer {ref} {target}")
        self._wait_refer_sent(mark, call, f"transfer {ref} {target}")

    def _do_transfer_attended(self, call: SoftCall, consult: SoftCall) -> None:
        ref = self._ref_of(call, "transfer")
        ref2 = self._ref_of(consult, "transfer to")
        mark = self._refer_mark()
        self._command(f"transfer {ref} --to-call {ref2}",
                      rf"Performing attended transfer of call {ref} to call {ref2}",
                      r"Syntax error|no call with id")
        self._wait_refer_sent(mark, call, f"transfer {ref} --to-call {ref2}")
