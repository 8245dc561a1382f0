"""Assertions over what was really on the wire.

All take a list of `WireMessage`s (from a Capture or read_pcap) and raise `WireAssertionError`
naming the messages involved (time, interface, addresses, start line) and what was expected
versus what was seen. Addresses are given as a host string ("198.19.0.1", "::1") or a
(host, port) tuple; IPv6 spellings are compared in canonical form.
"""

from __future__ import annotations

import ipaddress
import re
from collections import defaultdict
from collections.abc import Container, Iterable, Sequence
from typing import Any, Union

from referee import sip

from .packets import LINKTYPE_ETHERNET, LINKTYPE_RAW, FrameDecoder, Segment, WireMessage

Addr = Union[str, tuple[str, int]]
Flow = tuple[tuple[str, int], tuple[str, int]]

_MAX_LISTED = 12


class WireAssertionError(AssertionError):
    """What the wire shows contradicts the expectation."""


# -- helpers -------------------------------------------------------------------------------------

def _norm_host(host: str) -> str:
    try:
        return str(ipaddress.ip_address(host.strip("[]")))
    except ValueError:
        return host.lower()


def _parse_addr(spec: Addr, what: str) -> tuple[str, int | None]:
    if isinstance(spec, str):
        return _norm_host(spec), None
    if (isinstance(spec, tuple) and len(spec) >= 2 and isinstance(spec[0], str)
            and isinstance(spec[1], int)):
        return _norm_host(spec[0]), spec[1]
    raise TypeError(f"{what} must be a host string or a (host, port) tuple, got {spec!r}")


def _addr_matches(spec: tuple[str, int | None], host: str, port: int) -> bool:
    want_host, want_port = spec
    return _norm_host(host) == want_host and (want_port is None or want_port == port)


def _fmt(host: str, port: int | None) -> str:
    if port is None:
        return host
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _listing(items: Sequence[Any], describe=lambda m: m.describe()) -> str:
    lines = [f"  {describe(m)}" for m in items[:_MAX_LISTED]]
    if len(items) > _MAX_LISTED:
        lines.append(f"  ... and {len(items) - _MAX_LISTED} more")
    return "\n".join(lines) if lines else "  (none)"


def _top_via(msg: sip.Request | sip.Response):
    try:
        vias = msg.via
    except sip.SipParseError:
        return None
    return vias[0] if vias else None


def _cseq(msg: sip.Request | sip.Response) -> tuple[int, str] | None:
    try:
        c = msg.cseq
    except sip.SipParseError:
        return None
    return (c.seq, c.method.upper())


def find_messages(msgs: Iterable[WireMessage], *, iface: str | None = None,
                  method: str | None = None, status: int | Container[int] | None = None,
                  src: Addr | None = None, dst: Addr | None = None,
                  transport: str | None = None) -> list[WireMessage]:
    """The messages matching every given criterion (method: requests; status: responses)."""
    src_spec = _parse_addr(src, "src") if src is not None else None
    dst_spec = _parse_addr(dst, "dst") if dst is not None else None
    out = []
    for m in msgs:
        if iface is not None and m.iface != iface:
            continue
        if transport is not None and m.transport.upper() != transport.upper():
            continue
        if method is not None and (not m.is_request or m.msg.method.upper() != method.upper()):
            continue
        if status is not None:
            if m.is_request:
                continue
            if isinstance(status, int) and m.msg.status != status:
                continue
            if not isinstance(status, int) and m.msg.status not in status:
                continue
        if src_spec and not _addr_matches(src_spec, m.src, m.sport):
            continue
        if dst_spec and not _addr_matches(dst_spec, m.dst, m.dport):
            continue
        out.append(m)
    return out


def _selection_text(**criteria: Any) -> str:
    parts = [f"{k}={v!r}" for k, v in criteria.items() if v is not None]
    return ", ".join(parts) if parts else "all messages"


# -- assertions ----------------------------------------------------------------------------------

def assert_header(msgs: Sequence[WireMessage], header: str, value: str | None = None,
                  regex: str | re.Pattern[str] | None = None, *, present: bool = True,
                  iface: str | None = None, method: str | None = None,
                  status: int | Container[int] | None = None, src: Addr | None = None,
                  dst: Addr | None = None) -> list[WireMessage]:
    """Every selected message has `header` equal to `value` / matching `regex` (re.search)
    / merely present (neither given) / absent (present=False). The first occurrence of the
    header is checked. At least one message must be selected. Returns the selected messages."""
    if value is not None and regex is not None:
        raise ValueError("give value or regex, not both")
    if not present and (value is not None or regex is not None):
        raise ValueError("present=False takes no value or regex")
    selection = _selection_text(iface=iface, method=method, status=status, src=src, dst=dst)
    chosen = find_messages(msgs, iface=iface, method=method, status=status, src=src, dst=dst)
    if not chosen:
        raise WireAssertionError(
            f"assert_header({header}): no message matches ({selection}) among {len(msgs)} "
            f"message(s) on the wire:\n{_listing(list(msgs))}")
    pattern = re.compile(regex) if isinstance(regex, str) else regex
    if not present:
        expectation = "to be absent"
    elif value is not None:
        expectation = f"to equal {value!r}"
    elif pattern is not None:
        expectation = f"to match /{pattern.pattern}/"
    else:
        expectation = "to be present"
    bad = []
    for m in chosen:
        seen = m.msg.header(header)
        if not present:
            ok = seen is None
        elif seen is None:
            ok = False
        elif value is not None:
            ok = seen.strip() == value
        elif pattern is not None:
            ok = pattern.search(seen) is not None
        else:
            ok = True
        if not ok:
            bad.append((m, seen))
    if bad:
        lines = "\n".join(f"  {m.describe()}\n      {header}: {'(absent)' if s is None else s}"
                          for m, s in bad[:_MAX_LISTED])
        raise WireAssertionError(
            f"assert_header: expected {header} {expectation} in every message ({selection}); "
            f"{len(bad)} of {len(chosen)} differ:\n{lines}")
    return chosen


def assert_response_to_source(msgs: Sequence[WireMessage], method: str | None = None,
                              iface: str | None = None) -> list[tuple[WireMessage, WireMessage]]:
    """Each response went back to where its request came from.

    With `rport` in the request's top Via (RFC 3581 §4), or over TCP, the response must go to
    the request's source address *and port* and leave from the address and port the request
    was sent to. Without rport (UDP, RFC 3261 §18.2.2), it must go to the source address and
    the Via sent-by port (5060 if none). Requests and responses are paired per interface by
    Call-ID, CSeq and top Via branch. Returns the (request, response) pairs checked.
    """
    requests = [m for m in find_messages(msgs, iface=iface, method=method)
                if m.is_request and m.msg.method.upper() != "ACK"]
    if not requests:
        raise WireAssertionError(
            f"assert_response_to_source: no {method or 'request'} on the wire "
            f"({_selection_text(iface=iface)}) among {len(msgs)} message(s):\n"
            f"{_listing(list(msgs))}")
    by_key: dict[tuple, list[WireMessage]] = defaultdict(list)
    for r in requests:
        via = _top_via(r.msg)
        by_key[(r.iface, r.msg.call_id, _cseq(r.msg), via.branch if via else None)].append(r)
    pairs, bad = [], []
    for resp in msgs:
        if resp.is_request or (iface is not None and resp.iface != iface):
            continue
        via = _top_via(resp.msg)
        key = (resp.iface, resp.msg.call_id, _cseq(resp.msg), via.branch if via else None)
        reqs = by_key.get(key)
        if not reqs:
            continue
        req = reqs[0]
        pairs.append((req, resp))
        rvia = _top_via(req.msg)
        symmetric = req.transport.upper() != "UDP" or (rvia is not None and rvia.has_rport)
        if symmetric:
            want = (_norm_host(req.src), req.sport)
            rule = ("RFC 3581 §4 (rport)" if req.transport.upper() == "UDP"
                    else "RFC 3261 §18.2.2 (same connection)")
        else:
            want = (_norm_host(req.src), (rvia.port if rvia and rvia.port else 5060))
            rule = "RFC 3261 §18.2.2 (no rport: source address, Via port)"
        problems = []
        if (_norm_host(resp.dst), resp.dport) != want:
            problems.append(f"went to {_fmt(resp.dst, resp.dport)}, expected {_fmt(*want)}")
        if symmetric and (_norm_host(resp.src), resp.sport) != (_norm_host(req.dst), req.dport):
            problems.append(f"was sent from {_fmt(resp.src, resp.sport)}, expected "
                            f"{_fmt(req.dst, req.dport)} (where the request arrived)")
        if problems:
            via_text = req.msg.header("Via") or "(no Via)"
            bad.append(f"  {resp.describe()}\n      answers {req.describe()}\n"
                       f"      request Via: {via_text}\n      {'; '.join(problems)} per {rule}")
    if not pairs:
        raise WireAssertionError(
            f"assert_response_to_source: no response to any of {len(requests)} "
            f"{method or 'request'}(s) on the wire:\n{_listing(requests)}")
    if bad:
        raise WireAssertionError(
            f"assert_response_to_source: {len(bad)} of {len(pairs)} response(s) did not go back "
            f"to the request's source:\n" + "\n".join(bad[:_MAX_LISTED]))
    return pairs


def assert_retransmissions_same_branch(msgs: Sequence[WireMessage], method: str = "NOTIFY",
                                       min_copies: int = 2) -> list[list[WireMessage]]:
    """Copies of a request (same hop, Call-ID and CSeq) all carry the same top Via branch
    (RFC 3261 §17.1.1.3, §17.1.2), and at least one request was sent `min_copies` times.
    Returns the groups of copies, one list per request."""
    reqs = find_messages(msgs, method=method)
    if not reqs:
        raise WireAssertionError(f"assert_retransmissions_same_branch: no {method} on the wire "
                                 f"among {len(msgs)} message(s):\n{_listing(list(msgs))}")
    groups: dict[tuple, list[WireMessage]] = defaultdict(list)
    for m in reqs:
        groups[(m.iface, _norm_host(m.src), m.sport, _norm_host(m.dst), m.dport, m.msg.call_id,
                _cseq(m.msg))].append(m)
    bad = []
    for copies in groups.values():
        branches = []
        for c in copies:
            via = _top_via(c.msg)
            branches.append(via.branch if via else None)
        if len(set(branches)) > 1:
            detail = "\n".join(f"  {c.describe()}  branch={b}" for c, b in zip(copies, branches))
            bad.append(detail)
    if bad:
        raise WireAssertionError(
            f"assert_retransmissions_same_branch: {len(bad)} {method} request(s) were "
            f"retransmitted with a different top Via branch:\n" + "\n".join(bad[:_MAX_LISTED]))
    result = list(groups.values())
    if max(len(g) for g in result) < min_copies:
        raise WireAssertionError(
            f"assert_retransmissions_same_branch: no {method} was sent {min_copies} times or more "
            f"(copies per request: {[len(g) for g in result]}):\n{_listing(reqs)}")
    return result


def assert_nothing_sent_to(msgs: Sequence[Any], src: Addr | None, dst_addr: Addr) -> None:
    """No message (or segment) went from `src` (None: anyone) to `dst_addr`."""
    src_spec = _parse_addr(src, "src") if src is not None else None
    dst_spec = _parse_addr(dst_addr, "dst_addr")
    bad = [m for m in msgs
           if _addr_matches(dst_spec, m.dst, m.dport)
           and (src_spec is None or _addr_matches(src_spec, m.src, m.sport))]
    if bad:
        origin = f"from {_fmt(*src_spec)} " if src_spec else ""
        raise WireAssertionError(
            f"assert_nothing_sent_to: expected nothing {origin}to {_fmt(*dst_spec)}, "
            f"but {len(bad)} went there:\n{_listing(bad, _describe_any)}")


def _describe_any(m: Any) -> str:
    if hasattr(m, "describe"):
        return m.describe()
    return f"{_fmt(m.src, m.sport)} -> {_fmt(m.dst, m.dport)} {getattr(m, 'transport', '')}"


# -- agent log versus wire -----------------------------------------------------------------------

def _endpoint(value: Any, what: str) -> tuple[str, int]:
    if (isinstance(value, (tuple, list)) and len(value) >= 2 and isinstance(value[0], str)
            and isinstance(value[1], int)):
        return _norm_host(value[0]), value[1]
    raise TypeError(f"{what} must be a (host, port) tuple, got {value!r}")


def _ep_matches(ep: tuple[str, int], host: str, port: int) -> bool:
    if ep[1] != port:
        return False
    return ep[0] in ("0.0.0.0", "::") or ep[0] == _norm_host(host)  # wildcard bind: any address


def _first_diff(a: bytes, b: bytes) -> int:
    for i, (x, y) in enumerate(zip(a, b)):
        if x != y:
            return i
    return min(len(a), len(b))


def cross_check(agent_log: Iterable[Any], wire_msgs: Sequence[WireMessage]) -> int:
    """Every message an agent logged is on the wire, byte for byte and between the same
    endpoints, and every wire message from or to the agent's local endpoints is in its log.

    Log entries are any objects with `direction` ('sent'/'received'), `raw` (bytes),
    `local` and `remote` ((host, port)) and `time`. Returns the number of entries matched.
    """
    entries = []
    for i, e in enumerate(agent_log):
        missing_attrs = [a for a in ("direction", "raw", "local", "remote") if not hasattr(e, a)]
        if missing_attrs:
            raise TypeError(f"agent log entry {i} ({e!r}) lacks {', '.join(missing_attrs)}")
        if e.direction not in ("sent", "received"):
            raise ValueError(f"agent log entry {i}: direction must be 'sent' or 'received', "
                             f"got {e.direction!r}")
        if not isinstance(e.raw, (bytes, bytearray)):
            raise TypeError(f"agent log entry {i}: raw must be bytes, got {type(e.raw).__name__}")
        entries.append((e, _endpoint(e.local, f"entry {i} local"),
                        _endpoint(e.remote, f"entry {i} remote")))
    wire = list(wire_msgs)
    used = {"sent": [False] * len(wire), "received": [False] * len(wire)}
    missing = []
    for e, local, remote in entries:
        if e.direction == "sent":
            here, there = local, remote
        else:
            here, there = remote, local  # the wire source is the remote side
        taken = used[e.direction]
        for i, w in enumerate(wire):
            if (not taken[i] and w.raw == bytes(e.raw) and _ep_matches(here, w.src, w.sport)
                    and _ep_matches(there, w.dst, w.dport)):
                taken[i] = True
                break
        else:
            missing.append((e, here, there))
    locals_ = {local for _, local, _ in entries}
    extra = []
    for i, w in enumerate(wire):
        if any(_ep_matches(ep, w.src, w.sport) for ep in locals_) and not used["sent"][i]:
            extra.append((w, "sent"))
        if any(_ep_matches(ep, w.dst, w.dport) for ep in locals_) and not used["received"][i]:
            extra.append((w, "received"))
    if missing or extra:
        parts = []
        for e, here, there in missing[:_MAX_LISTED]:
            line = bytes(e.raw).split(b"\n", 1)[0].strip().decode("utf-8", "replace")
            hint = ""
            for w in wire:
                if (_ep_matches(here, w.src, w.sport) and _ep_matches(there, w.dst, w.dport)
                        and w.raw.split(b"\n", 1)[0] == bytes(e.raw).split(b"\n", 1)[0]):
                    hint = (f"; the wire has '{line}' between these endpoints with other bytes "
                            f"(first difference at byte {_first_diff(w.raw, bytes(e.raw))})")
                    break
            parts.append(f"  logged {e.direction} {_fmt(*here)} -> {_fmt(*there)} '{line}' "
                         f"at {getattr(e, 'time', '?')}: not on the wire{hint}")
        for w, direction in extra[:_MAX_LISTED]:
            parts.append(f"  on the wire but not logged as {direction}: {w.describe()}")
        raise WireAssertionError(
            f"cross_check: agent log ({len(entries)} entries) and wire ({len(wire)} messages) "
            f"disagree: {len(missing)} logged message(s) missing on the wire, {len(extra)} wire "
            f"message(s) missing in the log:\n" + "\n".join(parts))
    return len(entries)


# -- media ---------------------------------------------------------------------------------------

def _as_segments(packets: Iterable[Any]) -> Iterable[Segment]:
    decoder = None
    for p in packets:
        if isinstance(p, Segment):
            yield p
            continue
        if decoder is None:
            decoder = FrameDecoder()
        data = bytes(p)
        if not data:
            continue
        name = type(p).__name__
        linktype = LINKTYPE_ETHERNET if name in ("Ether", "Raw", "CookedLinux") else LINKTYPE_RAW
        if name == "CookedLinux":
            linktype = 113
        seg = decoder.decode(data, linktype, float(getattr(p, "time", 0.0)),
                             getattr(p, "sniffed_on", None))
        if seg is not None:
            yield seg


def rtp_flows(packets: Iterable[Any], min_packets: int = 3) -> set[Flow]:
    """UDP flows ((src, sport), (dst, dport)) that carry RTP: version-2 headers, not RTCP
    payload types, and at least `min_packets` packets of one SSRC with distinct sequence
    numbers. `packets` may be Segments or scapy packets (Capture.packets, rdpcap)."""
    seqs: dict[tuple[Flow, int], set[int]] = defaultdict(set)
    for seg in _as_segments(packets):
        if seg.transport != "UDP":
            continue
        p = seg.payload
        if len(p) < 12 or p[0] >> 6 != 2 or 72 <= (p[1] & 0x7F) <= 76:
            continue
        csrc = (p[0] & 0x0F) * 4
        if len(p) < 12 + csrc:
            continue
        flow = ((_norm_host(seg.src), seg.sport), (_norm_host(seg.dst), seg.dport))
        seqs[(flow, int.from_bytes(p[8:12], "big"))].add(int.from_bytes(p[2:4], "big"))
    return {flow for (flow, _ssrc), s in seqs.items() if len(s) >= min_packets}
