"""RFC 4475 torture messages: the valid ones parse (with the values the RFC describes), the
invalid ones raise SipParseError — from parse() when framing or the start line is broken, from
the typed view (or validate()) when only one header is broken."""

from __future__ import annotations

import pytest

from referee.sip import Request, Response, SipParseError, parse


def crlf(*lines: str) -> bytes:
    return ("\r\n".join(lines)).encode("utf-8")


def sdp(o: str, c: str, t: str = "0 0") -> bytes:
    return crlf("v=0", f"o=mhandley 29739 7272939 IN IP4 {o}", "s=-", f"c=IN IP4 {c}", f"t={t}",
                "m=audio 49217 RTP/AVP 0 12", "m=video 3227 RTP/AVP 31", "a=rtpmap:31 LPC", "")


# -- 3.1.1 valid messages ------------------------------------------------------------------------

WSINV = crlf(
    "INVITE sip:vivekg@chair-dnrc.example.com;unknownparam SIP/2.0",
    "TO :",
    " sip:vivekg@chair-dnrc.example.com ;   tag    = 1918181833n",
    'from   : "J Rosenberg \\\\\\""       <sip:jdrosen@example.com>',
    "  ;",
    "  tag = 98asjd8",
    "MaX-fOrWaRdS: 0068",
    "Call-ID: wsinv.ndaksdj@192.0.2.1",
    "Content-Length   : 150",
    "cseq: 0009",
    "  INVITE",
    "Via  : SIP  /   2.0",
    " /UDP",
    "    192.0.2.2;branch=390skdjuw",
    "s :",
    "NewFangledHeader:   newfangled value",
    " continued newfangled value",
    "UnknownHeaderWithUnusualValue: ;;,,;;,;",
    "Content-Type: application/sdp",
    "Route:",
    " <sip:services.example.com;lr;unknownwith=value;unknown-no-value>",
    "v:  SIP  / 2.0  / TCP     spindle.example.com   ;",
    "  branch  =   z9hG4bK9ikj8  ,",
    " SIP  /    2.0   / UDP  192.168.255.111   ; branch=",
    " z9hG4bK30239",
    'm:"Quoted string \\"\\"" <sip:jdrosen@example.com> ; newparam =',
    "      newvalue ;",
    "  secondparam ; q = 0.33",
    "", "") + sdp("192.0.2.3", "192.0.2.4")


def test_wsinv_short_tortuous_invite():
    msg = parse(WSINV)
    assert isinstance(msg, Request) and msg.method == "INVITE"
    assert msg.uri.host == "chair-dnrc.example.com" and msg.uri.has_param("unknownparam")
    assert msg.to.uri.user == "vivekg" and msg.to.tag == "1918181833n"
    assert msg.from_.display == 'J Rosenberg \\"' and msg.from_.tag == "98asjd8"
    assert msg.max_forwards == 68
    assert (msg.cseq.seq, msg.cseq.method) == (9, "INVITE")
    assert [(v.transport, v.host, v.branch) for v in msg.via] == [
        ("UDP", "192.0.2.2", "390skdjuw"),
        ("TCP", "spindle.example.com", "z9hG4bK9ikj8"),
        ("UDP", "192.168.255.111", "z9hG4bK30239")]
    assert msg.header("Subject") == ""
    assert msg.header("NewFangledHeader") == "newfangled value continued newfangled value"
    assert msg.header("UnknownHeaderWithUnusualValue") == ";;,,;;,;"
    assert msg.route[0].uri.host == "services.example.com"
    assert msg.route[0].uri.has_param("lr") and msg.route[0].uri.param("unknownwith") == "value"
    [contact] = msg.contact
    assert contact.display == 'Quoted string ""'
    assert contact.params.get("newparam") == "newvalue" and contact.params.get("q") == "0.33"
    assert "secondparam" in contact.params
    assert len(msg.body) == 150 and msg.sdp().media[1].rtpmap == {"31": "LPC"}
    msg.validate()
    assert bytes(msg) == WSINV


INTMETH = crlf(
    "!interesting-Method0123456789_*+`.%indeed'~ sip:1_unusual.URI~(to-be!sure)&isn't+it$/crazy?,/;;*"
    ":&it+has=1,weird!*pas$wo~d_too.(doesn't-it)@example.com SIP/2.0",
    "Via: SIP/2.0/TCP host1.example.com;branch=z9hG4bK-.!%66*_+`'~",
    'To: "BEL:\\\x07 NUL:\\\x00 DEL:\\\x7f" <sip:1_unusual.URI~(to-be!sure)&isn\'t+it$/crazy?,/;;*'
    "@example.com>",
    "From: token1~` token2'+_ token3*%!.- <sip:mundane@example.com>;fromParam''~+*_!.-%="
    '"\u0440\u0430\u0431\u043e\u0442\u0430\u044e\u0449\u0438\u0439";tag=_token~1\'+`*%!-.',
    "Call-ID: intmeth.word%ZK-!.*_+'@word`~)(><:\\/\"][?}{",
    "CSeq: 139122385 !interesting-Method0123456789_*+`.%indeed'~",
    "Max-Forwards: 255",
    "extensionHeader-!.%*+_`'~:\ufeff\u5927\u505c\u96fb",
    "Content-Length: 0", "", "")


def test_intmeth_wide_range_of_valid_characters():
    msg = parse(INTMETH)
    assert msg.method == "!interesting-Method0123456789_*+`.%indeed'~"
    assert msg.uri.user == "1_unusual.URI~(to-be!sure)&isn't+it$/crazy?,/;;*"
    assert msg.uri.password == "&it+has=1,weird!*pas$wo~d_too.(doesn't-it)"
    assert msg.uri.host == "example.com"
    assert msg.to.display == "BEL:\x07 NUL:\x00 DEL:\x7f"
    assert msg.from_.display == "token1~` token2'+_ token3*%!.-"
    assert msg.from_.tag == "_token~1'+`*%!-."
    assert msg.call_id == "intmeth.word%ZK-!.*_+'@word`~)(><:\\/\"][?}{"
    assert msg.header("extensionHeader-!.%*+_`'~") == "\ufeff\u5927\u505c\u96fb"
    assert msg.via[0].branch == "z9hG4bK-.!%66*_+`'~"
    msg.validate()


ESC01 = crlf(
    "INVITE sip:sips%3Auser%40example.com@example.net SIP/2.0",
    "To: sip:%75se%72@example.com",
    "From: <sip:I%20have%20spaces@example.net>;tag=938",
    "Max-Forwards: 87",
    "i: esc01.239409asdfakjkn23onasd0-3234",
    "CSeq: 234234 INVITE",
    "Via: SIP/2.0/UDP host5.example.net;branch=z9hG4bKkdjuw",
    "C: application/sdp",
    "Contact:",
    "  <sip:cal%6Cer@host5.example.net;%6C%72;n%61me=v%61lue%25%34%31>",
    "Content-Length: 150", "", "") + sdp("192.0.2.1", "192.0.2.1")


def test_esc01_valid_percent_escaping():
    msg = parse(ESC01)
    assert msg.uri.user == "sips:user@example.com" and msg.uri.host == "example.net"
    assert msg.to.uri.user == "user"
    assert msg.from_.uri.user == "I have spaces"
    assert msg.call_id == "esc01.239409asdfakjkn23onasd0-3234"
    assert msg.content_type.mime == "application/sdp"
    [contact] = msg.contact
    assert contact.uri.user == "caller"
    assert contact.uri.has_param("lr") and contact.uri.param("name") == "value%41"
    msg.validate()


ESCNULL = crlf(
    "REGISTER sip:example.com SIP/2.0",
    "To: sip:null-%00-null@example.com",
    "From: sip:null-%00-null@example.com;tag=839923423",
    "Max-Forwards: 70",
    "Call-ID: escnull.39203ndfvkjdasfkq3w4otrq0adsfdfnavd",
    "CSeq: 14398234 REGISTER",
    "Via: SIP/2.0/UDP host5.example.com;branch=z9hG4bKkdjuw",
    "Contact: <sip:%00@host5.example.com>",
    "Contact: <sip:%00%00@host5.example.com>",
    "L:0", "", "")


def test_escnull_escaped_nulls_in_uris():
    msg = parse(ESCNULL)
    assert msg.to.uri.user == "null-\x00-null" and msg.from_.tag == "839923423"
    assert [c.uri.user for c in msg.contact] == ["\x00", "\x00\x00"]
    assert msg.content_length == 0


ESC02 = crlf(
    "RE%47IST%45R sip:registrar.example.com SIP/2.0",
    'To: "%Z%45" <sip:resource@example.com>',
    'From: "%Z%45" <sip:resource@example.com>;tag=f232jadfj23',
    "Call-ID: esc02.asdfnqwo34rq23i34jrjasdcnl23nrlknsdf",
    "Via: SIP/2.0/TCP host.example.com;branch=z9hG4bK209%fzsnel234",
    "CSeq: 29344 RE%47IST%45R",
    "Max-Forwards: 70",
    "Contact: <sip:alias1@host1.example.com>",
    "C%6Fntact: <sip:alias2@host2.example.com>",
    "Contact: <sip:alias3@host3.example.com>",
    "l: 0", "", "")


def test_esc02_percent_that_is_not_an_escape():
    msg = parse(ESC02)
    assert msg.method == "RE%47IST%45R"          # not REGISTER: methods are not unescaped
    assert msg.to.display == "%Z%45"
    assert msg.via[0].branch == "z9hG4bK209%fzsnel234"
    assert [c.uri.user for c in msg.contact] == ["alias1", "alias3"]
    assert msg.header("C%6Fntact") == "<sip:alias2@host2.example.com>"   # an unknown header


LWSDISP = crlf(
    "OPTIONS sip:user@example.com SIP/2.0",
    "To: sip:user@example.com",
    "From: caller<sip:caller@example.com>;tag=323",
    "Max-Forwards: 70",
    "Call-ID: lwsdisp.1234abcd@funky.example.com",
    "CSeq: 60 OPTIONS",
    "Via: SIP/2.0/UDP funky.example.com;branch=z9hG4bKkdjuw",
    "l: 0", "", "")


def test_lwsdisp_no_space_between_display_name_and_bracket():
    msg = parse(LWSDISP)
    assert msg.from_.display == "caller" and msg.from_.uri.user == "caller"
    assert msg.from_.tag == "323"


LONG = "long" * 20
LONGREQ = crlf(
    "INVITE sip:user@example.com SIP/2.0",
    f'To: "I have a user name of {"extreme " * 10}proportion"<sip:user@example.com:6000;'
    f"unknownparam1=very{LONG}value;longparam{'name' * 25}=shortvalue;"
    f"very{'long' * 25}ParameterNameWithNoValue>",
    f"F: sip:{'amazinglylongcallername' * 5}@example.net;tag=12{'982' * 50}424"
    f";unknownheaderparam{'name' * 20}=unknowheaderparam{'value' * 15}"
    f";unknownValueless{'paramname' * 10}",
    f"Call-ID: longreq.one{'really' * 20}longcallid",
    "CSeq: 3882340 INVITE",
    f"Unknown-{'Long' * 20}-Name:unknown-{LONG}-value;unknown-{LONG}-parameter-name ="
    f"unknown-{LONG}-parameter-value",
    "Via: SIP/2.0/TCP sip33.example.com",
    "v: SIP/2.0/TCP sip32.example.com",
    "V: SIP/2.0/TCP sip31.example.com",
    "Via: SIP/2.0/TCP sip30.example.com",
    "ViA: SIP/2.0/TCP sip29.example.com",
    "VIa: SIP/2.0/TCP sip28.example.com",
    "VIA: SIP/2.0/TCP sip27.example.com",
    "via: SIP/2.0/TCP sip26.example.com",
    "viA: SIP/2.0/TCP sip25.example.com",
    "vIa: SIP/2.0/TCP sip24.example.com",
    "vIA: SIP/2.0/TCP sip23.example.com",
    "V :  SIP/2.0/TCP sip22.example.com",
    "v :  SIP/2.0/TCP sip21.example.com",
    "V  : SIP/2.0/TCP sip20.example.com",
    "v  : SIP/2.0/TCP sip19.example.com",
    "Via : SIP/2.0/TCP sip18.example.com",
    "Via  : SIP/2.0/TCP sip17.example.com",
    *[f"Via: SIP/2.0/TCP sip{n}.example.com" for n in range(16, 0, -1)],
    f"Via: SIP/2.0/TCP host.example.com;received=192.0.2.5;branch=very{'long' * 50}branchvalue",
    "Max-Forwards: 70",
    f"Contact: <sip:{'amazinglylongcallername' * 5}@host5.example.net>",
    "Content-Type: application/sdp",
    "l: 150", "", "") + sdp("192.0.2.1", "192.0.2.1")


def test_longreq_long_values_and_many_vias():
    msg = parse(LONGREQ)
    assert msg.to.display == f"I have a user name of {'extreme ' * 10}proportion"
    assert msg.to.uri.port == 6000
    assert msg.to.uri.param("unknownparam1") == f"very{LONG}value"
    assert msg.from_.tag == f"12{'982' * 50}424"
    assert msg.call_id == f"longreq.one{'really' * 20}longcallid"
    assert len(msg.via) == 34
    assert [v.host for v in msg.via[:3]] == ["sip33.example.com", "sip32.example.com",
                                            "sip31.example.com"]
    assert msg.via[-1].branch == f"very{'long' * 50}branchvalue"
    assert msg.contact[0].uri.user == "amazinglylongcallername" * 5
    msg.validate()


DBLREQ_SECOND = crlf(
    "INVITE sip:joe@example.com SIP/2.0",
    "t: sip:joe@example.com",
    "From: sip:caller@example.net;tag=141334",
    "Max-Forwards: 8",
    "Call-ID: dblreq.0ha0isnda977644900765@192.0.2.15",
    "CSeq: 8 INVITE",
    "Via: SIP/2.0/UDP 192.0.2.15;branch=z9hG4bKkdjuw380234",
    "Content-Type: application/sdp",
    "Content-Length: 150", "", "") + sdp("192.0.2.15", "192.0.2.15").replace(b"m=video", b"m =video")
DBLREQ = crlf(
    "REGISTER sip:example.com SIP/2.0",
    "To: sip:j.user@example.com",
    "From: sip:j.user@example.com;tag=43251j3j324",
    "Max-Forwards: 8",
    "I: dblreq.0ha0isndaksdj99sdfafnl3lk233412",
    "Contact: sip:j.user@host.example.com",
    "CSeq: 8 REGISTER",
    "Via: SIP/2.0/UDP 192.0.2.125;branch=z9hG4bKkdjuw23492",
    "Content-Length: 0", "", "") + DBLREQ_SECOND


def test_dblreq_extra_octets_after_content_length_are_discarded():
    msg = parse(DBLREQ)
    assert msg.method == "REGISTER" and msg.body == b""
    assert msg.trailing == DBLREQ_SECOND
    assert any("after Content-Length" in d for d in msg.defects)
    assert msg.call_id == "dblreq.0ha0isndaksdj99sdfafnl3lk233412"
    assert bytes(msg) == DBLREQ


SEMIURI = crlf(
    "OPTIONS sip:user;par=u%40example.net@example.com SIP/2.0",
    "To: sip:j_user@example.com",
    "From: sip:caller@example.org;tag=33242",
    "Max-Forwards: 3",
    "Call-ID: semiuri.0ha0isndaksdj",
    "CSeq: 8 OPTIONS",
    "Accept: application/sdp, application/pkcs7-mime,",
    "        multipart/mixed, multipart/signed,",
    "        message/sip, message/sipfrag",
    "Via: SIP/2.0/UDP 192.0.2.1;branch=z9hG4bKkdjuw",
    "l: 0", "", "")


def test_semiuri_semicolons_in_the_user_part():
    msg = parse(SEMIURI)
    assert msg.uri.user == "user;par=u@example.net" and msg.uri.host == "example.com"
    assert len(msg.uri.params) == 0
    assert msg.values("Accept") == ["application/sdp", "application/pkcs7-mime", "multipart/mixed",
                                    "multipart/signed", "message/sip", "message/sipfrag"]


TRANSPORTS = crlf(
    "OPTIONS sip:user@example.com SIP/2.0",
    "To: sip:user@example.com",
    "From: <sip:caller@example.com>;tag=323",
    "Max-Forwards: 70",
    "Call-ID:  transports.kijh4akdnaqjkwendsasfdj",
    "Accept: application/sdp",
    "CSeq: 60 OPTIONS",
    "Via: SIP/2.0/UDP t1.example.com;branch=z9hG4bKkdjuw",
    "Via: SIP/2.0/SCTP t2.example.com;branch=z9hG4bKklasjdhf",
    "Via: SIP/2.0/TLS t3.example.com;branch=z9hG4bK2980unddj",
    "Via: SIP/2.0/UNKNOWN t4.example.com;branch=z9hG4bKasd0f3en",
    "Via: SIP/2.0/TCP t5.example.com;branch=z9hG4bK0a9idfnee",
    "l: 0", "", "")


def test_transports_varied_and_unknown():
    msg = parse(TRANSPORTS)
    assert [v.transport for v in msg.via] == ["UDP", "SCTP", "TLS", "UNKNOWN", "TCP"]
    assert msg.call_id == "transports.kijh4akdnaqjkwendsasfdj"


# Modelled on §3.1.1.11 (mpart01): a multipart body holding octets that are not UTF-8.
MPART_BODY = (b"--7a9cbec02ceef655\r\nContent-Type: text/plain\r\nContent-Transfer-Encoding: binary"
              b"\r\n\r\nHello\r\n--7a9cbec02ceef655\r\nContent-Type: application/octet-stream\r\n"
              b"Content-Transfer-Encoding: binary\r\n\r\n" + bytes(range(256)) * 2
              + b"\r\n--7a9cbec02ceef655--\r\n")
MPART01 = crlf(
    "MESSAGE sip:kumiko@example.org SIP/2.0",
    "Via: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bK-d87543-4dade06d0bdb11ee-1--d87543-;rport",
    "Max-Forwards: 70",
    "Route: <sip:127.0.0.1:5080>",
    "Contact: <sip:fluffy@127.0.0.1:5070>",
    "To: <sip:kumiko@example.org>",
    "From: <sip:fluffy@example.com>;tag=2fb0dcc9",
    "Call-ID: 3d9485ad0c49859b@Zmx1ZmZ5LW1hYy0xNi5sb2NhbA..",
    "CSeq: 1 MESSAGE",
    "Content-Transfer-Encoding: binary",
    "Content-Type: multipart/mixed;boundary=7a9cbec02ceef655",
    "Date: Sat, 15 Oct 2005 04:44:56 GMT",
    "User-Agent: SIPimp.org/0.2.5 (curses)",
    f"Content-Length: {len(MPART_BODY)}", "", "") + MPART_BODY


def test_mpart01_binary_multipart_body():
    msg = parse(MPART01)
    assert msg.body == MPART_BODY and bytes(msg) == MPART01
    assert msg.content_type.params.get("boundary") == "7a9cbec02ceef655"
    assert msg.via[0].has_rport and msg.via[0].rport is None
    assert msg.date.isoformat() == "2005-10-15T04:44:56+00:00"
    assert msg.route[0].uri.port == 5080


UNREASON = crlf(
    "SIP/2.0 200 = 2**3 * 5**2 \u043d\u043e \u0441\u0442\u043e \u0434\u0435\u0432\u044f\u043d\u043e"
    "\u0441\u0442\u043e \u0434\u0435\u0432\u044f\u0442\u044c - \u043f\u0440\u043e\u0441\u0442\u043e\u0435",
    "Via: SIP/2.0/UDP 192.0.2.198;branch=z9hG4bK1324923",
    "Call-ID: unreason.1234ksdfak3j2erwedfsASdf",
    "CSeq: 35 INVITE",
    "From: sip:user@example.com;tag=11141343",
    "To: sip:user@example.edu;tag=2229",
    "Content-Length: 154",
    "Content-Type: application/sdp",
    "Contact: <sip:user@host198.example.com>", "", "") + sdp("192.0.2.198", "192.0.2.198")


def test_unreason_unusual_reason_phrase():
    msg = parse(UNREASON)
    assert isinstance(msg, Response) and msg.status == 200
    assert msg.reason.startswith("= 2**3 * 5**2 \u043d\u043e")
    assert msg.to.tag == "2229" and len(msg.body) == 154


NOREASON = crlf(
    "SIP/2.0 100 ",
    "Via: SIP/2.0/UDP 192.0.2.105;branch=z9hG4bK2398ndaoe",
    "Call-ID: noreason.asndj203insdf99223ndf",
    "CSeq: 35 INVITE",
    "From: <sip:user@example.com>;tag=39ansfi3",
    "To: <sip:user@example.edu>;tag=902jndnke3",
    "Content-Length: 0",
    "Contact: <sip:user@host105.example.com>", "", "")


def test_noreason_empty_reason_phrase():
    msg = parse(NOREASON)
    assert msg.status == 100 and msg.reason == "" and msg.defects == []
    assert bytes(msg) == NOREASON


# -- 3.3 / 3.4 application-layer semantics that must still parse -----------------------------------

UNKSCM = crlf(
    "OPTIONS nobodyKnowsThisScheme:totallyopaquecontent SIP/2.0",
    "To: sip:user@example.com",
    "From: sip:caller@example.net;tag=384",
    "Max-Forwards: 3",
    "Call-ID: unkscm.nasdfasser0q239nwsdfasdkl34",
    "CSeq: 3923423 OPTIONS",
    "Via: SIP/2.0/TCP host9.example.com;branch=z9hG4bKkdjuw39234",
    "Content-Length: 0", "", "")

NOVELSC = crlf(
    "OPTIONS soap.beep://192.0.2.103:3002 SIP/2.0",
    "To: sip:user@example.com",
    "From: sip:caller@example.net;tag=384",
    "Max-Forwards: 3",
    "Call-ID: novelsc.asdfasser0q239nwsdfasdkl34",
    "CSeq: 3923423 OPTIONS",
    "Via: SIP/2.0/TCP host9.example.com;branch=z9hG4bKkdjuw39234",
    "Content-Length: 0", "", "")

UNKSM2 = crlf(
    "REGISTER sip:example.com SIP/2.0",
    "To: isbn:2983792873",
    "From: <http://www.example.com>;tag=3234233",
    "Call-ID: unksm2.daksdj@hyphenated-host.example.com",
    "CSeq: 234902 REGISTER",
    "Max-Forwards: 70",
    "Via: SIP/2.0/UDP 192.0.2.21:5060;branch=z9hG4bKkdjuw",
    "Contact: <name:John_Smith>",
    "l: 0", "", "")

REGAUT01 = crlf(
    "REGISTER sip:example.com SIP/2.0",
    "To: sip:j.user@example.com",
    "From: sip:j.user@example.com;tag=87321hj23128",
    "Max-Forwards: 8",
    "Call-ID: regaut01.0ha0isndaksdj",
    "CSeq: 9338 REGISTER",
    "Via: SIP/2.0/TCP 192.0.2.253;branch=z9hG4bKkdjuw",
    "Authorization: NoOneKnowsThisScheme opaque-data=here",
    "Content-Length:0", "", "")

REGESCRT = crlf(
    "REGISTER sip:example.com SIP/2.0",
    "To: sip:user@example.com",
    "From: sip:user@example.com;tag=8",
    "Max-Forwards: 70",
    "Call-ID: regescrt.k345asrl3fdbv@192.0.2.1",
    "CSeq: 14398234 REGISTER",
    "Via: SIP/2.0/UDP host5.example.com;branch=z9hG4bKkdjuw",
    "M: <sip:user@example.com?Route=%3Csip:sip.example.com%3E>",
    "L:0", "", "")

CPARAM01 = crlf(
    "REGISTER sip:example.com SIP/2.0",
    "Via: SIP/2.0/UDP saturn.example.com:5060;branch=z9hG4bKkdjuw",
    "Max-Forwards: 70",
    "From: sip:watson@example.com;tag=DkfVgjkrtMwaerKKpe",
    "To: sip:watson@example.com",
    "Call-ID: cparam01.70710@saturn.example.com",
    "CSeq: 2 REGISTER",
    "Contact: sip:+19725552222@gw1.example.net;unknownparam",
    "l: 0", "", "")

INV2543 = crlf(
    "INVITE sip:UserB@example.com SIP/2.0",
    "Via: SIP/2.0/UDP iftgw.example.com",
    "From: <sip:+13035551111@ift.client.example.net;user=phone>",
    "Record-Route: <sip:UserB@example.com;maddr=ss1.example.com>",
    "To: sip:+16505552222@ss1.example.net;user=phone",
    "Call-ID: inv2543.1717@ift.client.example.com",
    "CSeq: 56 INVITE",
    "Content-Type: application/sdp", "", "") + sdp("192.0.2.5", "192.0.2.5")


def test_unknown_and_novel_uri_schemes_parse():
    assert parse(UNKSCM).uri.scheme == "nobodyknowsthisscheme"
    assert str(parse(NOVELSC).uri) == "soap.beep://192.0.2.103:3002"
    msg = parse(UNKSM2)
    assert msg.to.uri.scheme == "isbn" and msg.from_.uri.scheme == "http"
    assert str(msg.contact[0].uri) == "name:John_Smith"
    msg.validate()


def test_unknown_authorization_scheme_still_parses():
    msg = parse(REGAUT01)
    assert msg.header("Authorization") == "NoOneKnowsThisScheme opaque-data=here"


def test_escaped_headers_in_a_bracketed_contact_are_valid():
    msg = parse(REGESCRT)
    assert msg.contact[0].uri.header("Route") == "<sip:sip.example.com>"


def test_addr_spec_contact_parameters_belong_to_the_header():
    [contact] = parse(CPARAM01).contact
    assert contact.uri.user == "+19725552222" and "unknownparam" in contact.params
    assert len(contact.uri.params) == 0


def test_inv2543_old_syntax_without_branch_tags_or_length():
    msg = parse(INV2543)
    assert msg.via[0].branch is None and msg.from_.tag is None
    assert msg.record_route[0].uri.param("maddr") == "ss1.example.com"
    assert msg.body.startswith(b"v=0") and msg.content_length is None
    assert "missing Max-Forwards (RFC 3261 §8.1.1.6)" in msg.defects
    with pytest.raises(SipParseError, match="Content-Length is mandatory"):
        parse(INV2543, stream=True)


# -- 3.1.2 invalid messages: parse() raises --------------------------------------------------------

def _invite(start: str = "INVITE sip:user@example.com SIP/2.0", *headers: str,
            body: bytes = b"", length: str | None = None) -> bytes:
    base = ["To: sip:j.user@example.com", "From: sip:caller@example.net;tag=134161461246",
            "Max-Forwards: 7", "Call-ID: torture.0ha0isndaksdjasdf3234nas", "CSeq: 8 INVITE",
            "Via: SIP/2.0/UDP 192.0.2.15;branch=z9hG4bKkdjuw"]
    names = {h.split(":")[0].lower() for h in headers}
    lines = [h for h in base if h.split(":")[0].lower() not in names] + list(headers)
    lines.append(f"Content-Length: {len(body) if length is None else length}")
    return crlf(start, *lines, "", "") + body


PARSE_ERRORS = {
    # 3.1.2.2 clerr: Content-Length larger than the message
    "clerr": (_invite("INVITE sip:user@example.com SIP/2.0", "Content-Type: application/sdp",
                      body=sdp("192.0.2.155", "192.0.2.155"), length="9999"),
              "Content-Length 9999 but only 154 body bytes"),
    # 3.1.2.3 ncl: negative Content-Length
    "ncl": (_invite("INVITE sip:user@example.com SIP/2.0", body=sdp("192.0.2.53", "192.0.2.53"),
                    length="-999"), "Content-Length: not a non-negative integer"),
    # 3.1.2.4 scalar02: CSeq number above 2**31
    "scalar02": (crlf("REGISTER sip:example.com SIP/2.0",
                      "Via: SIP/2.0/TCP host129.example.com;branch=z9hG4bK342sdfoi3",
                      "To: <sip:user@example.com>", "From: <sip:user@example.com>;tag=239232jh3",
                      "CSeq: 36893488147419103232 REGISTER",
                      "Call-ID: scalar02.23o0pd9vanlq3wnrlnewofjas9ui32", "Max-Forwards: 300",
                      "Expires: 1" + "0" * 100, "Contact: <sip:user@host129.example.com>",
                      "  ;expires=280297596632815", "Content-Length: 0", "", ""),
                 "CSeq: CSeq number 36893488147419103232 is not below 2\\*\\*31"),
    # 3.1.2.5 scalarlg: overlarge values in a response
    "scalarlg": (crlf("SIP/2.0 503 Service Unavailable",
                      "Via: SIP/2.0/TCP host129.example.com;branch=z9hG4bKzzxdiwo34sw;received=192.0.2.129",
                      "To: <sip:user@example.com>", "From: <sip:other@example.net>;tag=2easdjfejw",
                      "CSeq: 9292394834772304023312 OPTIONS",
                      "Call-ID: scalarlg.noase0of0234hn2qofoaf0232aewf2394r",
                      "Retry-After: 949302838503028349304023988", 'Warning: 1812 overture "In Progress"',
                      "Content-Length: 0", "", ""), "CSeq: CSeq number"),
    # 3.1.2.7 ltgtruri: <> around the Request-URI
    "ltgtruri": (_invite("INVITE <sip:user@example.com> SIP/2.0"), "not an absolute URI"),
    # 3.1.2.8 lwsruri: embedded LWS in the Request-URI
    "lwsruri": (_invite("INVITE sip:user@example.com; lr SIP/2.0"), "bad request line"),
    # 3.1.2.9 lwsstart: several SP between request-line elements
    "lwsstart": (_invite("INVITE  sip:user@example.com  SIP/2.0"), "bad request line"),
    # 3.1.2.10 trws: SP at the end of the request line
    "trws": (crlf("OPTIONS sip:remote-target@example.com SIP/2.0  ",
                  "Via: SIP/2.0/TCP host1.example.com;branch=z9hG4bK299342093",
                  "To: <sip:remote-target@example.com>",
                  "From: <sip:local-resource@example.com>;tag=329429089",
                  "Call-ID: trws.oicu34958239neffasdhr2345r", "Accept: application/sdp",
                  "CSeq: 238923 OPTIONS", "Max-Forwards: 70", "Content-Length: 0", "", ""),
             "bad request line"),
    # 3.1.2.11 escruri: escaped headers in the Request-URI
    "escruri": (_invite("INVITE sip:user@example.com?Route=%3Csip:example.com%3E SIP/2.0"),
                "header component"),
    # 3.1.2.16 badvers: unknown protocol version
    "badvers": (crlf("OPTIONS sip:t.watson@example.org SIP/7.0",
                     "Via:     SIP/7.0/UDP c.example.com;branch=z9hG4bKkdjuw",
                     "Max-Forwards:     70", "From:    A. Bell <sip:a.g.bell@example.com>;tag=qweoiqpe",
                     "To:      T. Watson <sip:t.watson@example.org>",
                     "Call-ID: badvers.31417@c.example.com", "CSeq:    1 OPTIONS", "l: 0", "", ""),
                "unsupported version 'SIP/7.0'"),
    # 3.1.2.17 mismatch01: CSeq method differs from the request method
    "mismatch01": (_invite("OPTIONS sip:user@example.com SIP/2.0"),
                   "CSeq method INVITE does not match request method OPTIONS"),
    # 3.1.2.18 mismatch02: unknown method, CSeq method differs
    "mismatch02": (_invite("NEWMETHOD sip:user@example.com SIP/2.0"),
                   "does not match request method NEWMETHOD"),
    # 3.1.2.19 bigcode: overlarge response code
    "bigcode": (crlf("SIP/2.0 4294967301 better not break the receiver",
                     "Via: SIP/2.0/UDP 192.0.2.105;branch=z9hG4bK2398ndaoe",
                     "Call-ID: bigcode.asdof3uj203asdnf3429uasdhfas3ehjasdfas9i", "CSeq: 353494 INVITE",
                     "From: <sip:user@example.com>;tag=39ansfi3", "To: <sip:user@example.edu>;tag=902jndnke3",
                     "Content-Length: 0", "Contact: <sip:user@host105.example.com>", "", ""),
                "bad status code '4294967301'"),
    # 3.3.1 insuf: missing Call-ID, From and To
    "insuf": (crlf("INVITE sip:user@example.com SIP/2.0", "CSeq: 193942 INVITE",
                   "Via: SIP/2.0/UDP 192.0.2.95;branch=z9hG4bKkdj.insuf",
                   "Content-Type: application/sdp", "l: 152", "", "") + sdp("192.0.2.95", "192.0.2.95"),
              "missing mandatory header From"),
    # 3.3.8 multi01: several single-valued headers
    "multi01": (_invite("INVITE sip:user@company.com SIP/2.0", "Contact: <sip:joe@example.org>",
                        "To: sip:j_user@company.com", "Max-Forwards: 60",
                        "Call-ID: multi01.98asdh@192.0.2.1", "Call-ID: multi01.98asdh@192.0.2.2",
                        "CSeq: 59 INVITE"), "header Call-ID appears more than once"),
    # 3.3.9 mcl01: several Content-Length values
    "mcl01": (crlf("OPTIONS sip:user@example.com SIP/2.0",
                   "Via: SIP/2.0/UDP host5.example.net;branch=z9hG4bK293423",
                   "To: sip:user@example.com", "From: sip:other@example.net;tag=3923942",
                   "Call-ID: mcl01.fhn2323orihawfdoa3o4r52o3irsdf", "CSeq: 15932 OPTIONS",
                   "Content-Length: 13", "Max-Forwards: 60", "Content-Length: 5",
                   "Content-Type: text/plain", "", "",
                   "There's no way to know how many octets are supposed to be here."),
              "header Content-Length appears more than once"),
}


@pytest.mark.parametrize("name", sorted(PARSE_ERRORS))
def test_invalid_messages_raise_at_parse(name):
    data, reason = PARSE_ERRORS[name]
    with pytest.raises(SipParseError, match=reason) as info:
        parse(data)
    assert 0 <= info.value.offset <= len(data)


# -- 3.1.2 invalid messages: the broken header's view raises ---------------------------------------

BADINV01 = _invite("INVITE sip:user@example.com SIP/2.0", "Via: SIP/2.0/UDP 192.0.2.15;;,;,,",
                   'Contact: "Joe" <sip:joe@example.org>;;;;', "Content-Type: application/sdp",
                   body=sdp("192.0.2.15", "192.0.2.15"))
QUOTBAL = _invite("INVITE sip:user@example.com SIP/2.0", 'To: "Mr. J. User <sip:j.user@example.com>')
BADDATE = _invite("INVITE sip:user@example.com SIP/2.0", "Date: Fri, 01 Jan 2010 16:00:00 EST")
REGBADCT = crlf("REGISTER sip:example.com SIP/2.0", "To: sip:user@example.com",
                "From: sip:user@example.com;tag=998332", "Max-Forwards: 70",
                "Call-ID: regbadct.k345asrl3fdbv@192.0.2.1", "CSeq: 1 REGISTER",
                "Via: SIP/2.0/UDP 135.180.130.133:5060;branch=z9hG4bKkdjuw",
                "Contact: sip:user@example.com?Route=%3Csip:sip.example.com%3E", "l: 0", "", "")
BADASPEC = crlf("OPTIONS sip:user@example.org SIP/2.0",
                "Via: SIP/2.0/UDP host4.example.com:5060;branch=z9hG4bKkdju43234",
                "Max-Forwards: 70", 'From: "Bell, Alexander" <sip:a.g.bell@example.com>;tag=433423',
                'To: "Watson, Thomas" < sip:t.watson@example.org >',
                "Call-ID: badaspec.sdf0234n2nds0a099u23h3hnnw009cdkne3", "Accept: application/sdp",
                "CSeq: 3923239 OPTIONS", "l: 0", "", "")
BADDN = crlf("OPTIONS sip:t.watson@example.org SIP/2.0",
             "Via:     SIP/2.0/UDP c.example.com:5060;branch=z9hG4bKkdjuw", "Max-Forwards:      70",
             "From:    Bell, Alexander <sip:a.g.bell@example.com>;tag=43",
             "To:      Watson, Thomas <sip:t.watson@example.org>", "Call-ID: baddn.31415@c.example.com",
             "Accept: application/sdp", "CSeq:    3923239 OPTIONS", "l: 0", "", "")
SCALAR_VIEWS = _invite("INVITE sip:user@example.com SIP/2.0", "Max-Forwards: 300",
                       "Expires: 1" + "0" * 100)

VIEW_ERRORS = [
    ("badinv01 Via", BADINV01, "via", "Via: empty element"),
    ("badinv01 Contact", BADINV01, "contact", "Contact: empty parameter"),
    ("quotbal", QUOTBAL, "to", "To: unterminated quoted string"),
    ("baddate", BADDATE, "date", "Date: bad Date"),
    ("regbadct", REGBADCT, "contact", "must be enclosed in <...>"),
    ("badaspec", BADASPEC, "to", "spaces or nothing inside <...>"),
    ("baddn From", BADDN, "from_", "display name 'Bell, Alexander' must be tokens"),
    ("scalar Max-Forwards", SCALAR_VIEWS, "max_forwards", "300 is larger than 255"),
    ("scalar Expires", SCALAR_VIEWS, "expires", "is larger than 4294967295"),
]


@pytest.mark.parametrize("case, data, view, reason", VIEW_ERRORS, ids=[c[0] for c in VIEW_ERRORS])
def test_invalid_header_raises_in_its_view_and_in_validate(case, data, view, reason):
    msg = parse(data)   # framing is fine: only the view of the broken header fails
    with pytest.raises(SipParseError, match=reason) as info:
        getattr(msg, view)
    field = msg.header_fields[[h.key for h in msg.header_fields].index(
        {"from_": "from", "max_forwards": "max-forwards"}.get(view, view))]
    assert info.value.offset >= field.offset > 0
    with pytest.raises(SipParseError):
        msg.validate()


def test_badaspec_from_with_quoted_comma_is_fine():
    assert parse(BADASPEC).from_.display == "Bell, Alexander"
