"""Kamailio as the proxy DUT: life cycle, and SIPp REFER flows proxied end to end."""

from __future__ import annotations

import os
import re
import socket
from pathlib import Path

import pytest

from referee.dut.kamailio import KamailioError, KamailioPortInUse, KamailioProxy, find_kamailio
from referee.sipp import Sipp, run, start_attended_transferor, start_transferee

pytestmark = [pytest.mark.proxy, pytest.mark.timeout(120)]

FAST_TRANSFEREE = {"bye_wait_ms": 1000}
FAST_NEWCALL = {"talk_ms": 100}


@pytest.fixture
def proxy():
    kamailio = KamailioProxy()
    kamailio.start()
    try:
        yield kamailio
    finally:
        kamailio.stop()


def _group_gone(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return True
    return False


def _blocks(message_log: str) -> list[str]:
    """The messages of a SIPp -trace_msg log, each with its 'sent'/'received' line first."""
    return [b.strip() for b in re.split(r"\n?-{20,} [^\n]*\n", message_log) if b.strip()]


def _find(message_log: str, direction: str, first_line: str) -> list[str]:
    return [b for b in _blocks(message_log)
            if b.startswith(f"UDP message {direction}") and re.search(rf"\n\n?{first_line}", b)]


# -- life cycle --------------------------------------------------------------------------------

def test_start_answers_and_stop_leaves_no_process() -> None:
    kamailio = KamailioProxy().start()
    pid, run_dir = kamailio.pid, kamailio.run_dir
    assert kamailio.alive() and pid is not None
    assert kamailio.port > 0 and kamailio.uri == f"sip:127.0.0.1:{kamailio.port};lr"
    kamailio.stop()
    assert not kamailio.alive()
    assert _group_gone(pid)                      # main process and all its children
    assert run_dir is not None and not run_dir.exists()
    assert "Listening on" in kamailio.log()      # the log stays readable after stop()
    kamailio.stop()                              # twice is harmless


def test_two_instances_run_side_by_side() -> None:
    with KamailioProxy() as first, KamailioProxy() as second:
        assert first.port != second.port and first.run_dir != second.run_dir
        assert first.alive() and second.alive()


def test_port_in_use_and_bad_config_are_reported(tmp_path: Path) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as holder:
        holder.bind(("127.0.0.1", 0))
        with pytest.raises(KamailioPortInUse, match=r"already in use"):
            KamailioProxy(port=holder.getsockname()[1]).start()
    broken = tmp_path / "broken.cfg"
    broken.write_text("#!KAMAILIO\nloadmodule \"tm.so\"\nrequest_route {\n  t_relay(\n}\n")
    with pytest.raises(KamailioError, match=r"exited during start.*(ERROR|CRITICAL)"):
        KamailioProxy(cfg=broken).start()
    with pytest.raises(KamailioError, match="does not exist"):
        KamailioProxy(cfg=tmp_path / "missing.cfg").start()
    with pytest.raises(KamailioError, match="apt-get install kamailio"):
        find_kamailio("/nonexistent/kamailio")


# -- proxied REFER flows -------------------------------------------------------------------------

def test_blind_transfer_through_kamailio_keeps_record_route(proxy: KamailioProxy) -> None:
    kport = proxy.port
    with Sipp("uas_target", calls=1, trace_msg=True, params={"require_referred_by": True}) as carol:
        with start_transferee(carol.address, proxy=proxy.address, params=FAST_TRANSFEREE,
                              newcall_params=FAST_NEWCALL, trace_msg=True) as bob:
            alice = run("uac_transferor_blind", bob.address, proxy=proxy.address, calls=1, timeout=30,
                        trace_msg=True, params={"refer_to": f"<sip:carol@127.0.0.1:{carol.port}>"})
            transferee, newcall = bob.wait(20)
        target = carol.wait(20)
    for result in (alice, transferee, newcall, target):
        result.check(1)

    record_route = f"Record-Route: <sip:127.0.0.1:{kport};lr>"
    route = f"Route: <sip:127.0.0.1:{kport};lr>"
    # the transferee saw the INVITE through the proxy, with the proxy's Record-Route
    invite = _find(transferee.message_log, "received", "INVITE sip:")[0]
    assert record_route in invite and invite.count("\nVia:") == 2
    # the transferor learnt the route set from the 200 OK and used it for REFER and BYE
    ok = _find(alice.message_log, "received", r"SIP/2\.0 200 OK")[0]
    assert record_route in ok
    for method in ("REFER", "BYE"):
        request = _find(alice.message_log, "sent", f"{method} sip:")[0]
        assert route in request, f"{method} without the proxy's Route:\n{request}"
    # the transferee's NOTIFYs went back along the route set and reached the transferor proxied
    notify = _find(transferee.message_log, "sent", "NOTIFY sip:")[0]
    assert route in notify
    received = _find(alice.message_log, "received", "NOTIFY sip:")
    assert len(received) == 2 and all(n.count("\nVia:") == 2 for n in received)
    # the new call to the target was proxied too and kept Referred-By
    new_invite = _find(target.message_log, "received", "INVITE sip:carol")[0]
    assert record_route in new_invite and "Referred-By: <sip:alice@" in new_invite


def test_attended_transfer_invite_with_replaces_through_kamailio(proxy: KamailioProxy) -> None:
    with Sipp("uas_target_replaces", calls=2, trace_msg=True,
              params={"replaces_regexp": "^consult-[0-9]+-1;to-tag=[^;]+;from-tag=[^;]+$"}) as carol:
        with start_transferee(carol.address, proxy=proxy.address, params=FAST_TRANSFEREE,
                              newcall_params=FAST_NEWCALL) as bob:
            with start_attended_transferor(bob.address, carol.address, f"sip:carol@127.0.0.1:{carol.port}",
                                           proxy=proxy.address) as alice:
                attended, consult = alice.wait(30)
            transferee, newcall = bob.wait(20)
        target = carol.wait(20)
    for result in (attended, consult, transferee, newcall):
        result.check(1)
    target.check(2)
    replacing = _find(target.message_log, "received", "INVITE sip:carol")
    with_replaces = [b for b in replacing if "\nReplaces: consult-" in b]
    assert len(with_replaces) == 1
    assert f"Record-Route: <sip:127.0.0.1:{proxy.port};lr>" in with_replaces[0]


def test_register_then_call_by_aor(proxy: KamailioProxy) -> None:
    domain = f"127.0.0.1:{proxy.port}"
    with Sipp("uas_target", calls=1, params={"require_referred_by": True}) as carol:
        with start_transferee(carol.address, proxy=proxy.address, params=FAST_TRANSFEREE,
                              newcall_params=FAST_NEWCALL, trace_msg=True) as bob:
            for user, ua in (("bob", bob.front), ("carol", carol)):
                run("uac_register", proxy.address, calls=1, timeout=15, check=True,
                    params={"user": user, "contact": f"<sip:{user}@127.0.0.1:{ua.port}>"})
            # both the call and the transfer target are AORs of the proxy's domain
            alice = run("uac_transferor_blind", proxy.address, service="bob", calls=1, timeout=30,
                        params={"refer_to": f"<sip:carol@{domain}>"})
            transferee, newcall = bob.wait(20)
        target = carol.wait(20)
    for result in (alice, transferee, newcall, target):
        result.check(1)
    invite = _find(transferee.message_log, "received", "INVITE sip:")[0]
    # the proxy retargeted the AOR to the registered Contact
    assert invite.split("\n\n", 1)[1].startswith(f"INVITE sip:bob@127.0.0.1:{bob.front.port} SIP/2.0")


def test_unregistered_aor_gets_404(proxy: KamailioProxy) -> None:
    result = run("uac_refer_load", proxy.address, service="nobody", calls=1, timeout=15, trace_msg=True)
    assert result.failed == 1
    assert re.search(r"SIP/2\.0 404 Not Found", result.message_log)


def test_short_transfer_load_through_kamailio(proxy: KamailioProxy) -> None:
    with Sipp("uas_refer_load", calls=20) as bob:
        alice = run("uac_refer_load", bob.address, proxy=proxy.address, calls=20, rate=10, timeout=40)
        transferee = bob.wait(20)
    alice.check(20)
    transferee.check(20)
    assert alice.failed == 0 and alice.retransmissions == 0
    assert proxy.alive()
