"""Checks on the REFER a transferor sends: Refer-To, Contact, Referred-By, the dialog it is sent
in, and the Replaces an attended transfer puts into the Refer-To URI (RFC 3515, RFC 3892,
RFC 5589, RFC 3891, RFC 3261 §19.1.2)."""

from __future__ import annotations

import re

from referee.scenario.library import Param, check
from referee.sip import NameAddr, Replaces, SipParseError, SipUri, parse_uri, unescape

REFER = Param("saved", "the REFER the DUT sent, as an agent received it (an expect step's `save`)", required=True)

# hvalue of RFC 3261 §25.1: unreserved characters, hnv-unreserved ones, and %HH escapes
HVALUE_RE = re.compile(r"(?:[A-Za-z0-9\-_.!~*'()\[\]/?:+$]|%[0-9A-Fa-f]{2})*")
REPLACES_IN_URI_RE = re.compile(r"[?&]replaces=([^&>]*)", re.IGNORECASE)


def same_target(got: str, wanted: str) -> bool:
    """Two URIs name the same party: scheme, user, host (any case) and port agree (SIP URIs);
    other URIs must be equal."""
    try:
        a, b = parse_uri(got), parse_uri(wanted)
    except SipParseError:
        return got == wanted
    if not (isinstance(a, SipUri) and isinstance(b, SipUri)):
        return got == wanted
    return (a.scheme, a.user, a.host.lower(), a.port) == (b.scheme, b.user, b.host.lower(), b.port)


def replaces_in_refer_to(value: str) -> str | None:
    """The raw (still escaped) value of the ?Replaces= header of a Refer-To value, or None."""
    m = REPLACES_IN_URI_RE.search(value)
    return None if m is None else m.group(1)


def unescaped_characters(raw: str) -> list[str]:
    """The characters of an embedded header value that must have been %-escaped."""
    if HVALUE_RE.fullmatch(raw) is not None:
        return []
    return sorted({c for c in re.sub(r"%[0-9A-Fa-f]{2}", "", raw) if not HVALUE_RE.fullmatch(c)})


@check("refer_to_target", """
    The REFER carries exactly one Refer-To value, naming the transfer target.

    RFC 3515 §2.4.1: a REFER contains exactly one Refer-To header field value; for a blind
    transfer it is the URI the user transferred the call to (compared on scheme, user, host and
    port; URI parameters and embedded headers aside).
    """, refer=REFER,
    target=Param("string", "the URI the DUT was told to transfer to, e.g. '{target.uri}'", required=True))
async def refer_to_target(ctx, refer: str, target: str) -> None:
    msg = ctx.message(refer)
    values = msg.header_all("Refer-To")
    if len(values) != 1:
        raise ctx.violation(msg, "Refer-To", "exactly one Refer-To value", f"{len(values)}: {values}",
                            f"the REFER has {len(values)} Refer-To header fields: {values}")
    try:
        addr = NameAddr.parse(values[0])
    except SipParseError as exc:
        raise ctx.violation(msg, "Refer-To", "one name-addr or addr-spec", repr(values[0]),
                            f"Refer-To {values[0]!r} is not one name-addr/addr-spec: {exc}") from None
    uri = addr.uri.replace(headers=()) if isinstance(addr.uri, SipUri) else addr.uri
    if not same_target(str(uri), target):
        raise ctx.violation(msg, "Refer-To", f"the target {target}", repr(values[0]),
                            f"Refer-To {values[0]!r} does not name the target {target}")
    ctx.note(msg)


@check("refer_contact", """
    The REFER carries exactly one Contact value, a SIP or SIPS URI.

    RFC 3515 §2: REFER can create a dialog and be record-routed, so it contains exactly one
    Contact header field value.
    """, refer=REFER)
async def refer_contact(ctx, refer: str) -> None:
    msg = ctx.message(refer)
    fields = msg.header_all("Contact")
    try:
        contacts = msg.contact
    except SipParseError as exc:
        raise ctx.violation(msg, "Contact", "one SIP or SIPS URI", repr(fields),
                            f"unparsable Contact {fields}: {exc}") from None
    if len(contacts) != 1:
        raise ctx.violation(msg, "Contact", "exactly one Contact value", repr(fields) if fields else "none",
                            f"the REFER has {len(contacts)} Contact values: {fields or 'none'}")
    if not isinstance(contacts[0].uri, SipUri):
        raise ctx.violation(msg, "Contact", "a SIP or SIPS URI", repr(fields[0]),
                            f"Contact {fields[0]!r} is not a SIP or SIPS URI")
    ctx.note(msg)


@check("refer_in_dialog", """
    The REFER belongs to the dialog of the call being transferred (Call-ID, From tag, To tag).

    RFC 5589 §5: unless the transferor knows the transferee supports Target-Dialog and can be
    reached outside the dialog, it sends the REFER inside the existing INVITE dialog. `call` is
    the agent's side of that call: the REFER carries its Call-ID, the DUT's tag in From and the
    agent's tag in To.
    """, refer=REFER,
    call=Param("call", "the call being transferred, as the agent that received the REFER holds it", required=True))
async def refer_in_dialog(ctx, refer: str, call: str) -> None:
    msg = ctx.message(refer)
    c = ctx.call(call)
    got = (msg.call_id, msg.from_.tag, msg.to.tag)
    want = (c.call_id, c.dialog.remote_tag, c.dialog.local_tag)
    if got != want:
        extra = "" if msg.has("Target-Dialog") else " (and there is no Target-Dialog)"
        raise ctx.violation(
            msg, "dialog", f"Call-ID {want[0]!r}, From tag {want[1]!r}, To tag {want[2]!r}",
            f"Call-ID {got[0]!r}, From tag {got[1]!r}, To tag {got[2]!r}",
            f"the REFER has Call-ID {got[0]!r}, From tag {got[1]!r}, To tag {got[2]!r}; the call being "
            f"transferred is Call-ID {want[0]!r}, DUT tag {want[1]!r}, transferee tag {want[2]!r}{extra}")
    ctx.note(msg)


@check("referred_by_single", """
    The REFER carries at most one Referred-By value, a referrer URI.

    RFC 3892 §2.1: a referrer may add Referred-By (MAY), but a REFER never contains more than
    one Referred-By value (MUST NOT); if present it is a SIP URI identifying the referrer.
    """, refer=REFER)
async def referred_by_single(ctx, refer: str) -> None:
    msg = ctx.message(refer)
    values = msg.header_all("Referred-By")
    if len(values) > 1:
        raise ctx.violation(msg, "Referred-By", "at most one Referred-By value", f"{len(values)}: {values}",
                            f"the REFER has {len(values)} Referred-By header fields: {values}")
    if values:
        try:
            NameAddr.parse(values[0])
        except SipParseError as exc:
            raise ctx.violation(msg, "Referred-By", "one referrer URI", repr(values[0]),
                                f"Referred-By {values[0]!r} is not one referrer URI: {exc}") from None
    ctx.note(msg)


def _raw_replaces(ctx, msg) -> str:
    value = msg.header("Refer-To") or ""
    raw = replaces_in_refer_to(value)
    if raw is None:
        raise ctx.violation(msg, "Refer-To", "a URI with a ?Replaces= header", repr(value),
                            f"Refer-To {value!r} carries no ?Replaces= header")
    return raw


@check("refer_to_replaces", """
    The Replaces in the Refer-To URI names the consultation dialog as the target sees it.

    RFC 3891 §3, §4, §6.1: for an attended transfer the Refer-To URI carries a Replaces header
    naming the consultation dialog; the target matches to-tag against its local tag and
    from-tag against its remote tag, so to-tag is the target's tag and from-tag the
    transferor's tag in that dialog, with exactly one of each.
    """, refer=REFER,
    call=Param("call", "the consultation call, as the target agent holds it", required=True))
async def refer_to_replaces(ctx, refer: str, call: str) -> None:
    msg = ctx.message(refer)
    consult = ctx.call(call)
    raw = _raw_replaces(ctx, msg)
    try:
        replaces = Replaces.parse(unescape(raw))
    except SipParseError as exc:
        raise ctx.violation(msg, "Refer-To", "a Replaces value that parses", repr(raw),
                            f"Replaces {raw!r} in Refer-To does not parse: {exc}") from None
    got = (replaces.call_id, replaces.to_tag, replaces.from_tag)
    want = (consult.call_id, consult.dialog.local_tag, consult.dialog.remote_tag)
    if got != want:
        raise ctx.violation(
            msg, "Refer-To", f"Replaces call-id {want[0]!r} to-tag {want[1]!r} from-tag {want[2]!r}",
            f"Replaces {raw!r}: call-id {got[0]!r} to-tag {got[1]!r} from-tag {got[2]!r}",
            f"Replaces is call-id {got[0]!r} to-tag {got[1]!r} from-tag {got[2]!r}; the consultation "
            f"dialog as the target sees it is call-id {want[0]!r} to-tag {want[1]!r} (target's tag) "
            f"from-tag {want[2]!r} (transferor's tag)")
    ctx.note(msg)


@check("refer_to_replaces_escaped", """
    The ?Replaces= value in the Refer-To URI has only hvalue characters and %HH escapes.

    RFC 3261 §19.1.2 (hvalue grammar of §25.1): a header carried in a SIP URI has every
    URI-reserved character of its value %-escaped: ';', '=', '@' and the like may not appear raw.
    """, refer=REFER)
async def refer_to_replaces_escaped(ctx, refer: str) -> None:
    msg = ctx.message(refer)
    raw = _raw_replaces(ctx, msg)
    bad = unescaped_characters(raw)
    if bad:
        shown = " ".join(repr(c) for c in bad)
        raise ctx.violation(msg, "Refer-To", "reserved characters %-escaped", f"{raw!r} (raw {shown})",
                            f"Replaces value {raw!r} in Refer-To has unescaped reserved characters {shown}")
    ctx.note(msg)
