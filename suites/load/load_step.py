"""One load step: SIPp plays every party of N transfers through the DUT at a call rate.

Blind (RFC 5589 §6), per transfer:

    transferor SIPp --INVITE/REFER--> DUT --> transferee SIPp pair --INVITE--> DUT --> target SIPp
    uac_transferor_blind                      uas_transferee + uac_transferee_newcall  uas_target

Attended (RFC 5589 §7), per transfer: the transferor calls the transferee and the target
(consultation call), then REFERs the transferee with Refer-To <target?Replaces=consultation>;
the transferee's INVITE carries Replaces; the target answers it and ends the consultation call.

    uac_transferor_attended + uac_transferor_consult --> DUT --> uas_transferee + newcall --> DUT
    --> uas_target_replaces (two calls per transfer)

Every SIPp sends through the DUT (-rsa) and has its own directory under the step's artifact
directory (statistics, error log, screens). The transferor also writes -trace_shortmsg, from
which the 202 and final-NOTIFY latencies are taken. Bounds: each SIPp makes at most its number
of calls and runs at most its wall-clock budget; the ones still running after the transferor
ended get a grace period, then are stopped.
"""

from __future__ import annotations

import dataclasses
import shutil
import time
from pathlib import Path

from referee.sipp import Sipp, SippError, SippResult, SippTimeout, free_port

from load_figures import TransferorFigures, read_shortmsg, transferor_figures

KINDS = ("blind", "attended")
DRAIN_S = 15.0           # after the last call started: time for every call to end
GRACE_S = 8.0            # after the transferor ended: time for the other parties to end
RECV_TIMEOUT_MS = 5000   # a message that never comes fails its call after this
LOCAL_IP = "127.0.0.1"


@dataclasses.dataclass
class PartyResult:
    party: str
    expected: int              # calls this party must complete
    result: SippResult | None
    problem: str = ""          # why there is no result (SIPp did not start ...)

    @property
    def successful(self) -> int:
        return self.result.successful if self.result is not None else 0

    @property
    def failed_or_missing(self) -> int:
        return max(0, self.expected - self.successful)

    def describe(self) -> str:
        if self.result is None:
            return f"{self.party}: no result ({self.problem})"
        text = f"{self.party}: {self.successful}/{self.expected} successful"
        if self.failed_or_missing:
            text += f" -- {self.result.summary()}"
        return text


@dataclasses.dataclass
class StepRun:
    kind: str
    rate: float
    transfers: int
    parties: list[PartyResult]
    figures: TransferorFigures | None
    started: float              # time.time() when the transferor began
    wall_s: float

    @property
    def calls_expected(self) -> int:
        return sum(p.expected for p in self.parties)

    @property
    def calls_failed(self) -> int:
        return sum(p.failed_or_missing for p in self.parties)

    @property
    def failed_pct(self) -> float:
        return 100.0 * self.calls_failed / self.calls_expected if self.calls_expected else 100.0

    @property
    def transfers_completed(self) -> int:
        transferor = next((p for p in self.parties if p.party == "transferor"), None)
        return transferor.successful if transferor is not None else 0

    @property
    def retransmissions(self) -> int:
        return sum(p.result.retransmissions for p in self.parties if p.result is not None)


class _Parties:
    """The SIPp instances of one step; each is stopped for sure by close()."""

    def __init__(self, work_dir: Path, timeout: float) -> None:
        self.work_dir = work_dir
        self.timeout = timeout
        self.started: list[tuple[str, int, Sipp]] = []
        self.results: dict[str, PartyResult] = {}

    def start(self, party: str, expected: int, scenario: str, remote=None, **options) -> Sipp:
        options.setdefault("timeout", self.timeout)
        options.setdefault("recv_timeout_ms", RECV_TIMEOUT_MS)
        sipp = Sipp(scenario, remote, name=party, work_dir=self.work_dir / party, local_ip=LOCAL_IP,
                    calls=expected, **options)
        sipp.start()
        self.started.append((party, expected, sipp))
        return sipp

    def twin_address(self) -> tuple[str, int]:
        """A free TCP port for a 3PCC pair (the instance starting with <recvCmd> listens there)."""
        return (LOCAL_IP, free_port(LOCAL_IP, udp=False, tcp=True))

    def finish(self, party: str, budget: float) -> None:
        """Wait for `party` to end by itself within `budget` seconds, else stop it."""
        for name, expected, sipp in self.started:
            if name != party or name in self.results:
                continue
            try:
                result = sipp.wait(budget)
            except SippTimeout:
                result = sipp.stop()
            self.results[name] = PartyResult(name, expected, result)

    def close(self) -> list[PartyResult]:
        for name, expected, sipp in self.started:
            if name not in self.results:
                try:
                    self.results[name] = PartyResult(name, expected, sipp.stop())
                except SippError as exc:
                    self.results[name] = PartyResult(name, expected, None, str(exc))
        return [self.results[name] for name, _, _ in self.started]


def run_step(kind: str, rate: float, transfers: int, hold_ms: float, dut: tuple[str, int],
             work_dir: Path, during=None) -> StepRun:
    """Run `transfers` transfers of `kind` at `rate` cps through the proxy `dut`.

    `during(transferor)` is called once the load runs (the agents' samples); the step waits for
    it before collecting the results."""
    if kind not in KINDS:
        raise ValueError(f"unknown transfer kind {kind!r}; expected one of {', '.join(KINDS)}")
    shutil.rmtree(work_dir, ignore_errors=True)     # no file of an earlier run may be read as this one's
    work_dir.mkdir(parents=True)
    hold_s = hold_ms / 1000.0
    budget = transfers / rate + hold_s + DRAIN_S      # the transferor's wall-clock bound
    parties = _Parties(work_dir, budget + GRACE_S)
    # concurrency SIPp may open: every call of the step if needed, so the rate is never throttled
    concurrent = transfers
    started = time.time()
    t0 = time.monotonic()
    try:
        if kind == "blind":
            front_party = _start_blind(parties, rate, transfers, hold_ms, dut, budget, concurrent)
        else:
            front_party = _start_attended(parties, rate, transfers, hold_ms, dut, budget, concurrent)
        started = time.time()
        if during is not None:
            during(front_party)
        parties.finish("transferor", budget + GRACE_S)
        for name, _, _ in list(parties.started):
            parties.finish(name, GRACE_S)
    finally:
        results = parties.close()
    figures = None
    shortmsg = sorted((work_dir / "transferor").glob("*_shortmessages.log"))
    if shortmsg:
        figures = transferor_figures(read_shortmsg(shortmsg[0]))
    return StepRun(kind, rate, transfers, results, figures, started, time.monotonic() - t0)


def _start_blind(parties: _Parties, rate: float, n: int, hold_ms: float, dut, budget: float,
                 concurrent: int) -> Sipp:
    target = parties.start("target", n, "uas_target",
                           params={"require_referred_by": True, "referred_by_regexp": "sip:alice@",
                                   "hold_ms": 5000})
    twin = parties.twin_address()
    parties.start("transferee-newcall", n, "uac_transferee_newcall", target.address, twin=twin, proxy=dut,
                  params={"talk_ms": 300})
    transferee = parties.start("transferee", n, "uas_transferee", twin=twin, params={"bye_wait_ms": 2000})
    return parties.start("transferor", n, "uac_transferor_blind", transferee.address, proxy=dut,
                         rate=rate, max_concurrent=concurrent, timeout=budget, extra_args=["-trace_shortmsg"],
                         params={"refer_to": f"<sip:carol@{LOCAL_IP}:{target.port}>",
                                 "refer_delay_ms": int(hold_ms)})


def _start_attended(parties: _Parties, rate: float, n: int, hold_ms: float, dut, budget: float,
                    concurrent: int) -> Sipp:
    # the target ends the consultation call (the dialog the INVITE with Replaces replaced) a
    # moment after the transfer, as a target does on Replaces
    consult_ms = int(hold_ms) + 500
    target = parties.start("target", 2 * n, "uas_target_replaces",
                           params={"replaces_regexp": "^consult-[0-9]+-[0-9]+;to-tag=[^;]+;from-tag=[^;]+$",
                                   "consult_ms": consult_ms, "hold_ms": 5000})
    transferee_twin = parties.twin_address()
    parties.start("transferee-newcall", n, "uac_transferee_newcall", target.address, twin=transferee_twin,
                  proxy=dut, params={"talk_ms": 300})
    transferee = parties.start("transferee", n, "uas_transferee", twin=transferee_twin,
                               params={"bye_wait_ms": 2000})
    transferor_twin = parties.twin_address()
    parties.start("transferor-consult", n, "uac_transferor_consult", target.address, twin=transferor_twin,
                  proxy=dut, params={"hold_ms": consult_ms + 5000})
    return parties.start("transferor", n, "uac_transferor_attended", transferee.address, twin=transferor_twin,
                         proxy=dut, rate=rate, max_concurrent=concurrent, timeout=budget,
                         extra_args=["-trace_shortmsg"],
                         params={"target_uri": f"sip:carol@{LOCAL_IP}:{target.port}",
                                 "refer_delay_ms": int(hold_ms)})
