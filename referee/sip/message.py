"""SIP messages: parse bytes into Request/Response, keep raw bytes and header order, serialize.

Header access is by name, case-insensitive, compact forms understood (`m` is Contact, `r`
Refer-To, `b` Referred-By, `o` Event ...). Typed views (via, cseq, refer_to, replaces ...) are
parsed on first use, so a message whose only problem is in a header nobody looks at still
parses; `validate()` checks them all at once. A parsed message serializes back to exactly the
bytes it came from; a changed one is rendered anew with a correct Content-Length.

parse() itself does only what every message needs: it checks the framing, the start line, the
header names and the headers transaction matching relies on. The Header objects, their index by
name and the Request-URI of a start line met before are made on first use.
"""

from __future__ import annotations

import datetime
from collections.abc import Sequence
from typing import Callable, TypeVar

from .errors import SipParseError
from .grammar import is_token, split_list, split_list_strict
from .head import HeadFields, Header, find_head_end, split_message_head
from .headers import (CSeq, ContentType, Event, NameAddr, Replaces, SubscriptionState,
                      TargetDialog, Via, check_call_id, parse_date, parse_delta, parse_refer_sub)
from .names import CANONICAL, COMPACT_FORMS, canonical_name, default_reason, header_key
from .uri import SipUri, Uri, parse_uri, parses_as_plain_sip_uri

__all__ = [
    "SIP_VERSION", "COMPACT_FORMS", "LIST_HEADERS", "MANDATORY_REQUEST", "MANDATORY_RESPONSE",
    "Header", "Message", "Request", "Response", "canonical_name", "default_reason",
    "frame_stream", "parse",
]

SIP_VERSION = "SIP/2.0"
_CANONICAL = CANONICAL          # earlier private name, kept for importers
_key = header_key

# Headers whose grammar is a comma-separated list, so one line may carry several values.
LIST_HEADERS = frozenset({
    "via", "route", "record-route", "contact", "supported", "require", "proxy-require",
    "unsupported", "allow", "allow-events", "accept", "accept-encoding", "accept-language",
    "content-encoding", "in-reply-to", "warning", "path", "service-route", "privacy",
    "p-asserted-identity", "accept-contact", "reject-contact", "request-disposition",
})

# RFC 3261 §8.1.1 (requests) and §20 (responses): a message without these is not SIP we can use.
MANDATORY_REQUEST = ("Via", "From", "To", "Call-ID", "CSeq")
MANDATORY_RESPONSE = ("Via", "From", "To", "Call-ID", "CSeq")

# Headers that may appear at most once (RFC 3261 §7.3.1: not list headers); a second one is
# an error at parse time (RFC 4475 §3.3.8, §3.3.9).
_SINGLE = frozenset({"call-id", "cseq", "from", "to", "max-forwards", "content-length",
                     "content-type"})
_MANDATORY_SINGLE = ("from", "to", "call-id", "cseq")
_MANDATORY = frozenset(("via",) + _MANDATORY_SINGLE)

T = TypeVar("T")


class Message:
    """Common part of requests and responses."""

    # Until set on the message (these are not changed in place, so sharing them is safe):
    raw: bytes | None = None           # set by parse(); dropped on any change
    trailing: bytes = b""              # bytes after Content-Length (UDP), discarded
    _head: HeadFields | None = None    # parsed fields not yet made into Header objects
    _index: dict[str, list[Header]] | None = None   # key -> fields, made on first lookup

    def __init__(self, headers: list[tuple[str, str]] | list[Header] | None = None,
                 body: bytes = b"") -> None:
        self._fields: list[Header] | None = [
            h if isinstance(h, Header) else Header(h[0], h[1]) for h in headers] if headers else []
        self.body: bytes = body
        self.defects: list[str] = []           # tolerated deviations found while parsing
        self._views: dict[str, object] = {}

    # -- header access ---------------------------------------------------------------------
    @property
    def _headers(self) -> list[Header]:
        """The header fields in order; a parsed message makes them on first use."""
        fields = self._fields
        if fields is None:
            fields = self._fields = self._head.headers()
            self._head = None
        return fields

    @_headers.setter
    def _headers(self, fields: list[Header]) -> None:
        self._fields, self._head, self._index = fields, None, None

    def _named(self, key: str) -> Sequence[Header]:
        """Fields whose key is `key`, in order (the index's own list: do not change it)."""
        index = self._index
        if index is None:
            index = self._index = {}
            for h in self._headers:
                named = index.get(h.key)
                if named is None:
                    index[h.key] = [h]
                else:
                    named.append(h)
        return index.get(key, ())

    @property
    def headers(self) -> list[tuple[str, str]]:
        """All header fields in order, names as written."""
        return [(h.name, h.value) for h in self._headers]

    @property
    def header_fields(self) -> list[Header]:
        return list(self._headers)

    def header(self, name: str) -> str | None:
        """Value of the first header field called `name` (any spelling), or None."""
        named = self._named(header_key(name))
        return named[0].value if named else None

    def header_all(self, name: str) -> list[str]:
        """Values of every header field called `name`, one per field line."""
        return [h.value for h in self._named(header_key(name))]

    def values(self, name: str) -> list[str]:
        """All values of a header, list headers split on commas (outside quotes and <...>)."""
        fields = self.header_all(name)
        if header_key(name) in LIST_HEADERS:
            return [v for f in fields for v in split_list(f)]
        return fields

    def has(self, name: str) -> bool:
        return self.header(name) is not None

    def count(self, name: str) -> int:
        return len(self.header_all(name))

    def _changed(self) -> None:
        self.raw = None
        self._views.clear()
        self._index = None

    def add_header(self, name: str, value: str, first: bool = False) -> None:
        h = Header(name, value)
        self._headers.insert(0, h) if first else self._headers.append(h)
        self._changed()

    def set_header(self, name: str, value: str) -> None:
        """Replace every field called `name` with one (kept at the first one's position)."""
        key = header_key(name)
        for i, h in enumerate(self._headers):
            if h.key == key:
                self._headers[i] = Header(h.name, value)
                self._headers[i + 1:] = [x for x in self._headers[i + 1:] if x.key != key]
                break
        else:
            self._headers.append(Header(canonical_name(name), value))
        self._changed()

    def remove_header(self, name: str) -> None:
        key = header_key(name)
        self._headers = [h for h in self._headers if h.key != key]
        self._changed()

    def set_body(self, body: bytes, content_type: str | None = None) -> None:
        self.body = body
        if content_type:
            self.set_header("Content-Type", content_type)
        self._changed()

    # -- typed views (parsed once, errors name the header) ---------------------------------
    def _view(self, name: str, parse: Callable[[str], T], many: bool = False):
        cache_key = f"{name}:{many}"
        if cache_key in self._views:
            return self._views[cache_key]
        key = header_key(name)
        fields = self._named(key)
        field: Header | None = fields[0] if fields else None
        try:
            if many:
                items: list[object] = []
                for field in fields:
                    values = split_list_strict(field.value) if key in LIST_HEADERS else [field.value]
                    items.extend(parse(v) for v in values)
                result: object = items
            elif not fields:
                result = None
            else:
                if len(fields) > 1:
                    field = fields[1]
                    raise SipParseError("header appears more than once")
                result = parse(field.value)
        except SipParseError as exc:
            raise SipParseError(f"{canonical_name(name)}: {exc.reason}",
                                field.offset if field else 0) from None
        except Exception as exc:   # defensive: a view bug must still surface as a parse error
            raise SipParseError(f"{canonical_name(name)}: unparsable ({type(exc).__name__}: {exc})",
                                field.offset if field else 0) from None
        self._views[cache_key] = result
        return result

    @property
    def call_id(self) -> str | None:
        return self.header("Call-ID")

    @property
    def cseq(self) -> CSeq:
        return self._require("CSeq", CSeq.parse)

    @property
    def via(self) -> list[Via]:
        return self._view("Via", Via.parse, many=True)

    @property
    def from_(self) -> NameAddr:
        return self._require("From", NameAddr.parse)

    @property
    def to(self) -> NameAddr:
        return self._require("To", NameAddr.parse)

    @property
    def contact(self) -> list[NameAddr]:
        return [c for c in self._view("Contact", _parse_contact, many=True) if c is not None]

    @property
    def record_route(self) -> list[NameAddr]:
        return self._view("Record-Route", NameAddr.parse, many=True)

    @property
    def route(self) -> list[NameAddr]:
        return self._view("Route", NameAddr.parse, many=True)

    @property
    def refer_to(self) -> NameAddr | None:
        return self._view("Refer-To", NameAddr.parse)

    @property
    def refer_to_replaces(self) -> Replaces | None:
        """The Replaces carried as a `?Replaces=` header of the Refer-To URI (RFC 3891 §7)."""
        refer_to = self.refer_to
        if refer_to is None or not isinstance(refer_to.uri, SipUri):
            return None
        value = refer_to.uri.header("Replaces")
        return None if value is None else _replaces_in_refer_to(self, value)

    @property
    def referred_by(self) -> NameAddr | None:
        return self._view("Referred-By", NameAddr.parse)

    @property
    def event(self) -> Event | None:
        return self._view("Event", Event.parse)

    @property
    def subscription_state(self) -> SubscriptionState | None:
        return self._view("Subscription-State", SubscriptionState.parse)

    @property
    def replaces(self) -> Replaces | None:
        return self._view("Replaces", Replaces.parse)

    @property
    def refer_sub(self) -> bool | None:
        return self._view("Refer-Sub", parse_refer_sub)

    @property
    def target_dialog(self) -> TargetDialog | None:
        return self._view("Target-Dialog", TargetDialog.parse)

    @property
    def content_type(self) -> ContentType | None:
        return self._view("Content-Type", ContentType.parse)

    @property
    def content_length(self) -> int | None:
        return self._view("Content-Length", parse_delta)

    @property
    def max_forwards(self) -> int | None:
        return self._view("Max-Forwards", _parse_max_forwards)

    @property
    def expires(self) -> int | None:
        return self._view("Expires", parse_delta)

    @property
    def date(self) -> datetime.datetime | None:
        return self._view("Date", parse_date)

    def options(self, name: str) -> list[str]:
        """Option tags / methods of Supported, Require, Allow ... (order kept, as written)."""
        return self.values(name)

    def supports(self, tag: str, header: str = "Supported") -> bool:
        return tag.lower() in (v.lower() for v in self.values(header))

    @property
    def supported(self) -> list[str]:
        return self.values("Supported")

    @property
    def require(self) -> list[str]:
        return self.values("Require")

    @property
    def allow(self) -> list[str]:
        return [m.upper() for m in self.values("Allow")]

    def _require(self, name: str, parse: Callable[[str], T]) -> T:
        value = self._view(name, parse)
        if value is None:
            raise SipParseError(f"missing mandatory header {name}")
        return value

    def validate(self) -> None:
        """Parse every typed view present, raising the first SipParseError.

        parse() checks only what framing and transaction matching need; this is the strict
        check of the rest (From/To, Via, Contact, Route, REFER and event headers, SDP/sipfrag
        bodies are not included).
        """
        self.cseq, self.from_, self.to, self.via, self.contact, self.route, self.record_route
        self.refer_to, self.refer_to_replaces, self.referred_by, self.event
        self.subscription_state, self.replaces, self.refer_sub, self.target_dialog
        self.content_type, self.content_length, self.max_forwards, self.expires, self.date

    # -- bodies -----------------------------------------------------------------------------
    def sipfrag(self):
        """The message/sipfrag body (RFC 3420) as a Sipfrag; SipParseError when malformed."""
        from .sipfrag import Sipfrag
        return Sipfrag.parse(self.body)

    def sdp(self):
        """The application/sdp body as a Sdp; SipParseError when malformed."""
        from .sdp import Sdp
        return Sdp.parse(self.body)

    # -- serialization ----------------------------------------------------------------------
    def start_line(self) -> str:
        raise NotImplementedError

    def __bytes__(self) -> bytes:
        if self.raw is not None:
            return self.raw
        lines = [self.start_line()]
        has_length = False
        for h in self._headers:
            if h.key == "content-length":
                if has_length:
                    continue
                lines.append(f"{h.name}: {len(self.body)}")
                has_length = True
            else:
                lines.append(f"{h.name}: {h.value}")
        if not has_length:
            lines.append(f"Content-Length: {len(self.body)}")
        head = "\r\n".join(lines) + "\r\n\r\n"
        return head.encode("utf-8", "surrogateescape") + self.body

    def copy(self):
        clone = self.__class__.__new__(self.__class__)
        clone.__dict__.update(self.__dict__)
        if self._fields is not None:   # (fields not made yet are shared: nobody changes them)
            clone._fields = [Header(h.name, h.value, h.offset, h.key) for h in self._fields]
        clone._index = None
        clone._views = {}
        clone.defects = list(self.defects)
        return clone

    @property
    def is_request(self) -> bool:
        return isinstance(self, Request)

    def summary(self) -> str:
        """One line for logs and error messages: start line plus the CSeq."""
        cseq = self.header("CSeq") or "?"
        return f"{self.start_line()} (CSeq {cseq})"

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.summary()}>"


class Request(Message):
    def __init__(self, method: str, uri: str | Uri, headers=None, body: bytes = b"") -> None:
        Message.__init__(self, headers, body)
        self.method = method
        self._uri_text = str(uri)
        self._uri = uri if isinstance(uri, Uri) else None
        self.version = SIP_VERSION

    @property
    def uri(self) -> Uri:
        if self._uri is None:
            self._uri = parse_uri(self._uri_text)
        return self._uri

    @property
    def uri_text(self) -> str:
        return self._uri_text

    def set_uri(self, uri: str | Uri) -> None:
        self._uri_text, self._uri = str(uri), uri if isinstance(uri, Uri) else None
        self._changed()

    def start_line(self) -> str:
        return f"{self.method} {self._uri_text} {self.version}"


class Response(Message):
    def __init__(self, status: int, reason: str = "", headers=None, body: bytes = b"") -> None:
        Message.__init__(self, headers, body)
        self.status = status
        self.reason = reason or default_reason(status)
        self.version = SIP_VERSION

    @property
    def is_provisional(self) -> bool:
        return self.status < 200

    def start_line(self) -> str:
        return f"{self.version} {self.status} {self.reason}"


def _parse_contact(value: str) -> NameAddr | None:
    return None if value.strip() == "*" else NameAddr.parse(value)


def _parse_max_forwards(value: str) -> int:
    return parse_delta(value, 255)   # RFC 3261 §20.22: 0-255 (RFC 4475 §3.1.2.4)


def _replaces_in_refer_to(msg: Message, value: str) -> Replaces:
    field = next(iter(msg._named("refer-to")), None)
    try:
        return Replaces.parse(value)
    except SipParseError as exc:
        raise SipParseError(f"Refer-To: ?Replaces= {exc.reason}",
                            field.offset if field else 0) from None


# -- parsing ------------------------------------------------------------------------------------

def parse(data: bytes, stream: bool = False) -> Request | Response:
    """Parse one SIP message. `stream=True` (TCP/TLS) makes Content-Length mandatory.

    Any malformation raises SipParseError with the byte offset; no other exception escapes.
    Tolerated deviations (bare LF line ends, non-UTF-8 header bytes, a missing Max-Forwards,
    bytes beyond Content-Length) are listed in `msg.defects`.
    """
    try:
        return _parse(data, stream)
    except SipParseError:
        raise
    except Exception as exc:   # defensive: a parser bug must still surface as a parse error
        raise SipParseError(f"unparsable message ({type(exc).__name__}: {exc})", 0) from None


def _parse(data: bytes, stream: bool) -> Request | Response:
    if type(data) is not bytes:
        if not isinstance(data, (bytes, bytearray, memoryview)):
            raise SipParseError(f"expected bytes, got {type(data).__name__}", 0)
        data = bytes(data)
    # RFC 3261 §7.5: tolerate CRLFs before the start line (keep-alives, sloppy stacks).
    lead = 0
    if data[:1] in (b"\r", b"\n"):
        lead = len(data) - len(data.lstrip(b"\r\n"))
    if lead == len(data):
        raise SipParseError("empty message", 0)
    defects: list[str] = []
    start, fields, body_start = split_message_head(data, lead, defects)
    msg = _parse_start_line(start, lead, defects)
    msg._fields, msg._head = None, fields
    msg.defects = defects
    length = _check_headers(msg, fields)
    _take_body(msg, data, body_start, length, stream)
    msg.raw = data
    return msg


def _parse_start_line(line: str, offset: int, defects: list[str]) -> Request | Response:
    is_status = _GOOD_START_LINES.get(line)
    if is_status is None:
        is_status = line[:4].upper() == "SIP/"
        msg = _check_status_line(line, offset, defects) if is_status else _check_request_line(
            line, offset)
        # Remember lines that the split below gives back exactly (nothing stripped, no defect).
        if not defects and msg.start_line() == line:
            if len(_GOOD_START_LINES) >= _GOOD_START_LINES_MAX:
                _GOOD_START_LINES.clear()   # (bounded against hostile input)
            _GOOD_START_LINES[line] = is_status
        return msg
    if is_status:
        version, code, reason = line.split(" ", 2)
        return _response(int(code), reason, version)
    method, uri_text, version = line.split(" ")
    return _request(method, uri_text, version)   # (the URI, found good, is parsed on first use)


# Start lines found good -> whether they are status lines. Peers send the same few status
# lines and Request-URIs over and over: each is checked once.
_GOOD_START_LINES: dict[str, bool] = {}
_GOOD_START_LINES_MAX = 4096


def _check_status_line(line: str, offset: int, defects: list[str]) -> Response:
    parts = line.split(" ", 2)
    if parts[0].upper() != SIP_VERSION:
        raise SipParseError(f"unsupported version in status line {line[:60]!r}", offset)
    if len(parts) < 2:
        raise SipParseError(f"bad status line {line!r}: expected 'SIP/2.0 <code> <reason>'", offset)
    code = parts[1]
    if len(code) != 3 or not (code.isascii() and code.isdigit()) or not 100 <= int(code) <= 699:
        raise SipParseError(f"bad status code {code[:20]!r} in {line[:60]!r}",
                            offset + len(parts[0]) + 1)
    if len(parts) == 2:
        defects.append("status line without the space before the reason phrase")
    return _response(int(code), parts[2] if len(parts) > 2 else "", parts[0])


def _check_request_line(line: str, offset: int) -> Request:
    parts = line.split(" ")
    if len(parts) != 3:
        raise SipParseError(
            f"bad request line {line[:80]!r}: expected '<METHOD> <URI> SIP/2.0' with single spaces",
            offset)
    method, uri_text, version = parts
    if method not in _USUAL_METHODS and not is_token(method):
        raise SipParseError(f"bad method {method[:40]!r}", offset)
    if version.upper() != SIP_VERSION:
        raise SipParseError(f"unsupported version {version[:20]!r} (expected SIP/2.0)",
                            offset + len(method) + len(uri_text) + 2)
    if parses_as_plain_sip_uri(uri_text):
        return _request(method, uri_text, version)   # (the URI is parsed on first use)
    uri = parse_uri(uri_text, offset + len(method) + 1)
    if isinstance(uri, SipUri) and uri.headers:
        # RFC 3261 §19.1.1 table: headers are not allowed in a Request-URI (RFC 4475 §3.1.2.11).
        raise SipParseError(f"header component '?...' in the Request-URI {uri_text[:80]!r}",
                            offset + len(method) + 1)
    return _request(method, uri, version)


def _response(status: int, reason: str, version: str) -> Response:
    response = Response(status, reason)
    if not reason:
        response.reason = reason   # as written, even empty
    if version != SIP_VERSION:
        response.version = version
    return response


def _request(method: str, uri: str | Uri, version: str) -> Request:
    request = Request(method, uri)
    if version != SIP_VERSION:
        request.version = version
    return request


def _check_headers(msg: Request | Response, fields: HeadFields) -> int | None:
    """Mandatory and single-occurrence headers, CSeq and Call-ID; returns the Content-Length."""
    keys = fields.keys
    present = set(keys)
    if len(present) < len(keys):   # some header is repeated: fine unless it is a single one
        _reject_repeated_single(keys, fields)
    if not _MANDATORY <= present:
        _reject_missing_mandatory(present)
    cseq_at = keys.index("cseq")
    method = _usual_cseq_method(fields.value(cseq_at))
    if method is None:
        method = _check_value(fields, cseq_at, "CSeq", CSeq.parse).method
    call_id_at = keys.index("call-id")
    if not _is_usual_call_id(fields.value(call_id_at)):
        _check_value(fields, call_id_at, "Call-ID", check_call_id)
    if isinstance(msg, Request):
        # RFC 3261 §8.1.1.5: the CSeq method matches the request method (RFC 4475 §3.1.2.17/18).
        if method != msg.method:
            raise SipParseError(f"CSeq method {method} does not match request method {msg.method}",
                                fields.offset(cseq_at))
        if "max-forwards" not in present:
            msg.defects.append("missing Max-Forwards (RFC 3261 §8.1.1.6)")
    if "content-length" not in present:
        return None
    length_at = keys.index("content-length")
    value = fields.value(length_at)
    if value.isdigit() and value.isascii() and len(value) <= 9:   # the usual shape, below 2**32
        length = int(value)
    else:
        length = _check_value(fields, length_at, "Content-Length", parse_delta)
    msg._views["Content-Length:False"] = length
    return length


# Quick checks of the usual shapes of the values parse() needs: they accept nothing the full
# parsers (CSeq.parse, check_call_id, parse_delta) reject. What they do not recognise is left
# to those, which also word the error.

def _usual_cseq_method(value: str) -> str | None:
    """The method of a CSeq value such as `1 INVITE` (one of the usual methods), or None."""
    number, _, method = value.partition(" ")
    if (method in _USUAL_METHODS and number.isdigit() and number.isascii() and len(number) <= 10
            and int(number) < 2 ** 31):
        return method
    return None


_USUAL_METHODS = frozenset({"INVITE", "ACK", "BYE", "CANCEL", "OPTIONS", "REGISTER", "REFER",
                            "NOTIFY", "SUBSCRIBE", "INFO", "UPDATE", "PRACK", "MESSAGE",
                            "PUBLISH"})


def _is_usual_call_id(value: str) -> bool:
    """Visible ASCII without spaces: check_call_id's rule, without a regex."""
    return value != "" and value.isascii() and value.isprintable() and " " not in value


def _check_value(fields: HeadFields, at: int, name: str, parse: Callable[[str], T]) -> T:
    """parse() of the value of field `at`, its errors naming the header and its line."""
    try:
        return parse(fields.value(at))
    except SipParseError as exc:
        raise SipParseError(f"{name}: {exc.reason}", fields.offset(at)) from None


def _reject_missing_mandatory(present: set[str]) -> None:
    """Raise for the first mandatory header missing (Via first)."""
    if "via" not in present:
        raise SipParseError("missing mandatory header Via", 0)
    for key in _MANDATORY_SINGLE:
        if key not in present:
            raise SipParseError(f"missing mandatory header {canonical_name(key)}", 0)


def _reject_repeated_single(keys: list[str], fields: HeadFields) -> None:
    """Raise at the first repeated field of a header that may appear only once."""
    first_repeat = None
    for key in _SINGLE:
        if keys.count(key) > 1:
            at = keys.index(key, keys.index(key) + 1)
            if first_repeat is None or at < first_repeat:
                first_repeat = at
    if first_repeat is not None:
        raise SipParseError(f"header {canonical_name(keys[first_repeat])} appears more than once",
                            fields.offset(first_repeat))


def _take_body(msg: Message, data: bytes, body_start: int, length: int | None, stream: bool) -> None:
    available = len(data) - body_start
    if length is None:
        if stream:
            raise SipParseError("Content-Length is mandatory over a stream transport", body_start)
        msg.body = data[body_start:]
        return
    if length > available:
        raise SipParseError(f"Content-Length {length} but only {available} body bytes", len(data))
    msg.body = data[body_start:body_start + length]
    if length < available:
        msg.trailing = data[body_start + length:]
        msg.defects.append(f"{available - length} bytes after Content-Length discarded (RFC 3261 §18.3)")


def frame_stream(buffer: bytes) -> tuple[bytes | None, bytes]:
    """Cut one complete message off a stream buffer (TCP/TLS): (message or None, rest).

    Leading CRLFs (keep-alives) are dropped. Raises SipParseError when the head is complete
    but its Content-Length is missing, not a number, or given twice with different values
    (the stream cannot be framed).
    """
    buffer = bytes(buffer).lstrip(b"\r\n")
    head_end, body_start = find_head_end(buffer)
    if head_end == -1:
        return None, buffer
    length = None
    for line in buffer[:head_end].split(b"\n")[1:]:
        if line[:1] in (b" ", b"\t"):
            continue
        name, colon, value = line.partition(b":")
        if colon and name.strip(b" \t").lower() in (b"content-length", b"l"):
            text = value.strip(b" \t\r")
            if not text.isdigit() or len(text.lstrip(b"0")) > 10:
                raise SipParseError(f"bad Content-Length {text[:20]!r} on a stream", 0)
            if length is not None and int(text) != length:
                raise SipParseError("two different Content-Length values on a stream", 0)
            length = int(text)
    if length is None:
        raise SipParseError("message on a stream without Content-Length", head_end)
    end = body_start + length
    if len(buffer) < end:
        return None, buffer
    return buffer[:end], buffer[end:]
