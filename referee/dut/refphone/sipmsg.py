"""Just enough SIP text handling to report wire facts from messages pjsua2 hands us.

pjsua2 gives the raw text of a received INVITE (`SipRxData.wholeMsg`); the reference phone
reports a few of its headers in events. This is not a parser for untrusted input in general:
it never raises, it returns '' for anything it cannot find.
"""

from __future__ import annotations

# RFC 3261 / RFC 3515 / RFC 3892 compact header forms
_COMPACT = {"f": "from", "t": "to", "i": "call-id", "m": "contact", "r": "refer-to", "b": "referred-by"}


def header(message: str, name: str) -> str:
    """Value of the first header `name` (long or compact form, any case) in the message head."""
    wanted = name.lower()
    head = message.replace("\r\n", "\n").split("\n\n", 1)[0]
    lines = head.split("\n")[1:]          # skip the start line
    unfolded: list[str] = []
    for line in lines:
        if line[:1] in (" ", "\t") and unfolded:
            unfolded[-1] += " " + line.strip()
        else:
            unfolded.append(line)
    for line in unfolded:
        key, sep, value = line.partition(":")
        if not sep:
            continue
        key = key.strip().lower()
        if _COMPACT.get(key, key) == wanted:
            return value.strip()
    return ""


def body(message: str) -> str:
    """Everything after the blank line ending the head ('' if none)."""
    text = message.replace("\r\n", "\n")
    return text.split("\n\n", 1)[1] if "\n\n" in text else ""


def request_uri(message: str) -> str:
    """The Request-URI of a request's start line ('' for a response or garbage)."""
    parts = message.split("\r\n", 1)[0].split("\n", 1)[0].split(" ")
    if len(parts) == 3 and parts[2].startswith("SIP/"):
        return parts[1]
    return ""


def bare_uri(name_addr: str) -> str:
    """`"Alice" <sip:a@h>;tag=1` -> `sip:a@h`; `sip:a@h;tag=1` -> `sip:a@h`."""
    text = name_addr.strip()
    if "<" in text and ">" in text:
        return text[text.index("<") + 1:text.index(">")]
    return text.split(";", 1)[0].strip()
