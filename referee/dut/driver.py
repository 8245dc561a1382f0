"""The one control interface for every phone-like DUT the suite drives itself.

A driver launches (or attaches to) a SIP phone and lets a test make it act like a user would:
dial, answer, hang up, transfer. What the phone does on its own (incoming calls, a REFER it
received, NOTIFYs about a transfer it made, hang-ups) comes back as `PhoneEvent`s, read with
`wait_event`. Methods are synchronous and bounded by timeouts; asyncio callers run them with
`asyncio.to_thread`.

Suites never special-case a product: everything product-specific lives in the driver and in
the `capabilities` it declares.
"""

from __future__ import annotations

import abc
import dataclasses
import time


class DriverError(RuntimeError):
    """A driver could not do what it was asked (process died, command refused, timeout).

    The suite's verdict for a test this interrupts is ERROR (a fault of the harness or the
    environment), unless a subclass below says otherwise.
    """
    verdict = "error"           # read by referee.scenario.verdict.classify


class ProgramMissing(DriverError):
    """The program a driver runs is not installed (or not executable). The run stops at once
    with one message: every test would fail the same way."""


class TransportUnsupported(DriverError):
    """The profile asks for a transport this driver cannot make its product listen on. Refused
    when the DUT starts, with one message."""


class ActionUnsupported(DriverError):
    """The product cannot perform the action asked of it (e.g. no attended-transfer command).
    The test cannot reach the point of judging: its verdict is INCONCLUSIVE."""
    verdict = "inconclusive"


class NoEvidence(DriverError):
    """The product was asked to act and took the command, but the SIP that would show the action
    (e.g. the REFER of a transfer) did not appear. Without that evidence nothing can be judged:
    INCONCLUSIVE, unless the requirement under test itself obliges the device to send it."""
    verdict = "inconclusive"


@dataclasses.dataclass(frozen=True)
class PhoneEvent:
    """One thing the phone reported.

    kind is one of:
      incoming            an INVITE arrived            fields: call, remote (URI), replaces (bool)
      ringing             our outgoing call got 18x    fields: call
      confirmed           a call is established        fields: call
      disconnected        a call ended                 fields: call, code (last SIP status, may be '')
      transfer_request    a REFER arrived on a call    fields: call, target (Refer-To URI)
      transfer_status     NOTIFY about a transfer this phone made   fields: call, code (sipfrag status)
      registered          registration result          fields: code
      log                 anything else worth keeping  fields: text
    """

    kind: str
    fields: dict[str, str]
    at: float = dataclasses.field(default_factory=time.monotonic)

    def get(self, key: str, default: str = "") -> str:
        return self.fields.get(key, default)


#: SIP transports a DUT can be asked to listen on (profile `transport` / `transports`)
TRANSPORTS = ("udp", "tcp", "tls")


# Capability names a driver (or a profile) may declare. Tests needing one the DUT lacks are skipped.
CAPABILITIES = frozenset({
    "transferee",        # accepts REFER and calls the Refer-To target
    "transferor",        # can send REFER (blind) when told to
    "attended",          # can send REFER with Replaces (attended transfer)
    "target",            # can be the transfer target (answer the INVITE from the transferee)
    "replaces",          # honours INVITE with Replaces (RFC 3891)
    "refer_sub",         # understands Refer-Sub: false (RFC 4488)
    "decline_refer",     # can be told to decline an incoming REFER
    "manual_answer",     # can be told not to auto-answer, and to answer / reject on command
    "early_transfer",    # a PBX that transfers to a call still ringing ("transfer before answer")
})


class PhoneDriver(abc.ABC):
    """Control interface of a phone DUT (reference phone, baresip, linphonec, twinkle, ...)."""

    #: product name shown in reports
    name: str = "phone"
    #: subset of CAPABILITIES this product supports, as observed on this machine
    capabilities: frozenset[str] = frozenset()
    #: False for drivers that only ask for an action (a person, an HTTP API, a command) and cannot
    #: see what the product did: Flow.dut then waits for the SIP the action implies
    observes_product: bool = True
    #: the executable the driver launches, as its Debian package installs it ("" for none)
    program: str = ""
    #: the Debian package that installs `program` (named in the ProgramMissing fix)
    package: str = ""
    #: the transports this driver can make its product listen on
    transports: tuple[str, ...] = ("udp",)
    #: transport -> why the product cannot listen on it (quoted when it is refused)
    transport_limits: dict[str, str] = {}
    #: the product binds its SIP port on every address (0.0.0.0), not only on `host`
    binds_all_addresses: bool = False

    def __init__(self, host: str = "127.0.0.1", port: int = 0, user: str = "dut",
                 transport: str = "udp") -> None:
        self.host = host
        self.port = port   # 0: the driver picks a free port in start()
        self.user = user
        self.transport = transport

    @property
    def sip_uri(self) -> str:
        """Where the suite sends calls to this phone, e.g. sip:dut@127.0.0.1:5080 (with
        ;transport=tcp or ;transport=tls when it listens on TCP or TLS)."""
        return sip_uri(self.user, self.host, self.port, self.transport)

    # -- what this driver needs, checked before anything starts -------------------------------
    @classmethod
    def find_program(cls) -> str:
        """Absolute path of the program this driver launches. Raises ProgramMissing with the fix."""
        from .programs import find_program
        return find_program(cls.program, cls.package)

    @classmethod
    def check_transport(cls, transport: str) -> None:
        """Raise TransportUnsupported unless this driver can make its product listen on `transport`."""
        check_transport(cls.name, transport, cls.transports, cls.transport_limits)

    # -- life cycle ------------------------------------------------------------------------
    @abc.abstractmethod
    def start(self, timeout: float = 15.0) -> None:
        """Launch the phone and return once it listens on host:port. Raises DriverError."""

    @abc.abstractmethod
    def stop(self, timeout: float = 5.0) -> None:
        """Stop the phone (gracefully, then kill). Never raises; always reaps the process."""

    @abc.abstractmethod
    def alive(self) -> bool:
        """True while the phone process runs."""

    # -- behaviour switches -----------------------------------------------------------------
    def set_answer_mode(self, mode: str) -> None:
        """'auto' (answer with 200), 'manual' (ring until answer()/reject()), 'busy' (486),
        'decline' (603), 'noanswer' (ring forever). Raises DriverError if unsupported."""
        raise DriverError(f"{self.name}: answer mode {mode!r} not supported")

    def set_refer_policy(self, policy: str) -> None:
        """'accept' (default) or 'decline' (answer REFER with 603). Raises DriverError if unsupported."""
        raise DriverError(f"{self.name}: refer policy {policy!r} not supported")

    # -- user actions (each returns once the phone acknowledged the command) -----------------
    @abc.abstractmethod
    def dial(self, uri: str) -> str:
        """Place a call; returns the driver's call handle (used in events' `call` field)."""

    @abc.abstractmethod
    def answer(self, call: str | None = None) -> None:
        """Answer the ringing call (or the given one)."""

    def reject(self, code: int = 486, call: str | None = None) -> None:
        raise DriverError(f"{self.name}: reject not supported")

    @abc.abstractmethod
    def hangup(self, call: str | None = None) -> None:
        """Hang up the current call (or the given one)."""

    def hold(self, call: str | None = None) -> None:
        raise DriverError(f"{self.name}: hold not supported")

    @abc.abstractmethod
    def transfer(self, target_uri: str, call: str | None = None) -> None:
        """Blind transfer: send REFER with Refer-To target_uri on the call."""

    def transfer_attended(self, call: str, consult_call: str) -> None:
        """Attended transfer: REFER on `call` with Refer-To = consult_call's peer + Replaces."""
        raise DriverError(f"{self.name}: attended transfer not supported")

    # -- what the phone reported ------------------------------------------------------------
    @abc.abstractmethod
    def wait_event(self, kind: str, timeout: float = 5.0, **match: str) -> PhoneEvent:
        """Return the first not-yet-consumed event of `kind` whose fields equal `match`
        (waiting up to `timeout` s). Raises DriverError naming what did arrive meanwhile."""

    @abc.abstractmethod
    def events(self) -> list[PhoneEvent]:
        """All events seen so far (consumed or not), oldest first."""


def sip_uri(user: str | None, host: str, port: int, transport: str = "udp") -> str:
    """sip:[user@]host:port, with ;transport=tcp|tls for a stream transport.

    TLS is named `sip:...;transport=tls`, not `sips:`: the agents' own Contact and Via use it,
    every product here dials it, and a sips: URI would oblige the DUT to keep SIPS end to end
    (RFC 5630), which is not what the REFER purposes judge."""
    hostport = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    suffix = "" if transport == "udp" else f";transport={transport}"
    return f"sip:{user}@{hostport}{suffix}" if user else f"sip:{hostport}{suffix}"


def check_transport(name: str, transport: str, supported, limits: dict[str, str] | None = None) -> None:
    """Raise TransportUnsupported (one message: what, why, the fix) unless `transport` is supported."""
    if transport in supported:
        return
    why = (limits or {}).get(transport, "")
    raise TransportUnsupported(
        f"{name}: cannot listen on {transport.upper()}" + (f": {why}" if why else "")
        + f"; it supports {', '.join(t.upper() for t in supported)} (fix: list only those in the profile's "
          f"`transports`)")
