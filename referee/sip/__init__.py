"""referee.sip — the SIP message layer: parse, inspect and build messages.

Nothing but SipParseError ever escapes `parse`, whatever the input; typed views, `sipfrag()`,
`sdp()`, `Sipfrag.parse`, `Sdp.parse` and the digest parsers raise only SipParseError too.
"""

from .digest import (ALGORITHMS, Challenge, Credentials, authorization, make_challenge,
                     verify)
from .errors import SipParseError
from .grammar import Params, split_list
from .head import Header
from .headers import (CSeq, ContentType, Event, NameAddr, Replaces, SubscriptionState,
                      TargetDialog, Via, parse_date, parse_delta, parse_refer_sub)
from .message import (COMPACT_FORMS, Message, Request, Response, canonical_name,
                      default_reason, frame_stream, parse)
from .sdp import Connection, Media, Origin, Sdp
from .sipfrag import Sipfrag
from .uri import SipUri, TelUri, Uri, escape_header_value, make_sip_uri, parse_uri, unescape

__all__ = [
    "SipParseError", "Params", "split_list", "CSeq", "ContentType", "Event", "NameAddr",
    "Replaces", "SubscriptionState", "TargetDialog", "Via", "parse_refer_sub", "COMPACT_FORMS",
    "Header", "Message", "Request", "Response", "canonical_name", "default_reason",
    "frame_stream", "parse", "SipUri", "TelUri", "Uri", "escape_header_value", "make_sip_uri",
    "parse_uri", "unescape",
    "parse_date", "parse_delta", "Sipfrag", "Sdp", "Media", "Origin", "Connection",
    "ALGORITHMS", "Challenge", "Credentials", "authorization", "make_challenge", "verify",
]
