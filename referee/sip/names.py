"""Header names (compact forms, canonical spelling, lookup keys) and default reason phrases."""

from __future__ import annotations

import sys

COMPACT_FORMS = {
    "a": "Accept-Contact", "b": "Referred-By", "c": "Content-Type", "d": "Request-Disposition",
    "e": "Content-Encoding", "f": "From", "i": "Call-ID", "j": "Reject-Contact", "k": "Supported",
    "l": "Content-Length", "m": "Contact", "o": "Event", "r": "Refer-To", "s": "Subject",
    "t": "To", "u": "Allow-Events", "v": "Via", "x": "Session-Expires", "y": "Identity",
}

# Canonical spelling for rendering and for messages to humans.
CANONICAL = {name.lower(): name for name in (
    "Accept", "Accept-Contact", "Accept-Encoding", "Accept-Language", "Allow", "Allow-Events",
    "Authorization", "Call-ID", "Contact", "Content-Disposition", "Content-Encoding",
    "Content-Length", "Content-Type", "CSeq", "Date", "Event", "Expires", "From", "Max-Forwards",
    "Min-Expires", "Proxy-Authenticate", "Proxy-Authorization", "Proxy-Require", "Record-Route",
    "Refer-Sub", "Refer-To", "Referred-By", "Reject-Contact", "Replaces", "Request-Disposition",
    "Require", "Retry-After", "Route", "Server", "Session-Expires", "Subject",
    "Subscription-State", "Supported", "Target-Dialog", "Timestamp", "To", "Unsupported",
    "User-Agent", "Via", "Warning", "WWW-Authenticate", "Identity", "Path", "RSeq", "RAck",
    "Privacy", "P-Asserted-Identity", "Organization", "Priority", "In-Reply-To", "Reply-To",
    "Authentication-Info", "Call-Info", "Alert-Info", "Error-Info", "Content-Language",
    "MIME-Version", "Service-Route", "Reason", "Min-SE", "History-Info", "Diversion")}


def canonical_name(name: str) -> str:
    """Full, canonically spelled header name for any spelling or compact form."""
    lower = name.lower()
    if len(lower) == 1 and lower in COMPACT_FORMS:
        return COMPACT_FORMS[lower]
    return CANONICAL.get(lower, name)


# Spelling as written -> lookup key (lowercase canonical name). The parser fills it with the
# names it meets; the size bound keeps hostile input from growing it without limit.
_KEYS: dict[str, str] = {}
_KEYS_MAX = 4096


def header_key(name: str) -> str:
    """The lookup key of a header name: lowercase full name (`v`, `VIA`, `Via` -> 'via')."""
    key = _KEYS.get(name)
    if key is None:
        key = sys.intern(canonical_name(name).lower())   # (identical keys compare fastest)
        if len(_KEYS) < _KEYS_MAX:
            _KEYS[name] = key
    return key


for _name in list(CANONICAL.values()) + list(COMPACT_FORMS):
    for _spelling in (_name, _name.lower(), _name.upper()):
        header_key(_spelling)


REASONS = {
    100: "Trying", 180: "Ringing", 181: "Call Is Being Forwarded", 182: "Queued",
    183: "Session Progress", 199: "Early Dialog Terminated", 200: "OK", 202: "Accepted",
    204: "No Notification", 300: "Multiple Choices", 301: "Moved Permanently",
    302: "Moved Temporarily", 305: "Use Proxy", 380: "Alternative Service",
    400: "Bad Request", 401: "Unauthorized", 402: "Payment Required", 403: "Forbidden",
    404: "Not Found", 405: "Method Not Allowed", 406: "Not Acceptable",
    407: "Proxy Authentication Required", 408: "Request Timeout", 410: "Gone",
    413: "Request Entity Too Large", 414: "Request-URI Too Long",
    415: "Unsupported Media Type", 416: "Unsupported URI Scheme", 420: "Bad Extension",
    421: "Extension Required", 423: "Interval Too Brief", 480: "Temporarily Unavailable",
    481: "Call/Transaction Does Not Exist", 482: "Loop Detected", 483: "Too Many Hops",
    484: "Address Incomplete", 485: "Ambiguous", 486: "Busy Here", 487: "Request Terminated",
    488: "Not Acceptable Here", 489: "Bad Event", 491: "Request Pending",
    493: "Undecipherable", 500: "Server Internal Error", 501: "Not Implemented",
    502: "Bad Gateway", 503: "Service Unavailable", 504: "Server Time-out",
    505: "Version Not Supported", 513: "Message Too Large", 600: "Busy Everywhere",
    603: "Decline", 604: "Does Not Exist Anywhere", 606: "Not Acceptable",
}

_CLASS_REASONS = {1: "Provisional", 2: "OK", 3: "Redirect", 4: "Client Error",
                  5: "Server Error", 6: "Global Failure"}


def default_reason(status: int) -> str:
    return REASONS.get(status, _CLASS_REASONS.get(status // 100, "Unknown"))
