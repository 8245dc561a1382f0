"""Transports and programs of the launched DUTs: each product listens on the profile's transport
(UDP, TCP, TLS) or is refused at start with one clear message; programs are found under the
names their Debian packages install, or the start is refused with the package to install.

The calls here are the suite's own agents (referee.agent) against the real products, bound the
way `referee run` binds them (DutSession: URIs with ;transport=, TLS contexts for the agents),
and judged on what the agents received: the DUT's requests arrive over the transport asked for.
"""

from __future__ import annotations

import asyncio
import os
import pathlib
import textwrap

import pytest

from referee.agent import Agent
from referee.dut import DutSession, ProfileError, ProgramMissing, TransportUnsupported, load_profile
from referee.dut.drivers import driver_class
from referee.dut.kamailio import KamailioMissing, find_kamailio
from referee.dut.programs import find_program
from referee.sip import Request
from tests.programs import require_program

REPO = pathlib.Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.timeout(90)

# (driver, transport) pairs each product can listen on, as measured on this machine
SUPPORTED = [("refphone", "tcp"), ("refphone", "tls"), ("baresip", "tcp"), ("baresip", "tls"),
             ("linphone", "tcp"), ("twinkle", "tcp"), ("baresip", "udp"), ("twinkle", "udp")]
# ... and the ones refused, with the reason the refusal must give
REFUSED = [("linphone", "tls", "accepts no incoming TLS connection"),
           ("twinkle", "tls", "has no SIP over TLS")]


def phone_profile(tmp_path: pathlib.Path, driver: str, transports: list[str]) -> pathlib.Path:
    path = tmp_path / f"{driver}.toml"
    path.write_text(textwrap.dedent(f"""\
        name = "{driver} ({', '.join(transports)})"
        kind = "phone"
        driver = "{driver}"
        user = "dut"
        transports = {transports!r}
        roles = ["transferee", "target", "transferor"]
        """).replace("'", '"'))
    return path


# -- program names ------------------------------------------------------------------------------

@pytest.mark.parametrize("driver, program, package", [
    ("baresip", "baresip", "baresip-core"), ("linphone", "linphonec", "linphone-cli"),
    ("twinkle", "twinkle-console", "twinkle-console")])
def test_drivers_find_the_program_their_package_installs(driver, program, package):
    cls = driver_class(driver)
    assert (cls.program, cls.package) == (program, package)
    require_program(program, package)
    assert cls.find_program() == find_program(program)
    assert os.access(cls.find_program(), os.X_OK)


def test_kamailio_found_outside_path(monkeypatch):
    """Debian installs kamailio in /usr/sbin, which a user's PATH may lack."""
    require_program("kamailio")
    monkeypatch.setenv("PATH", "/usr/bin:/bin")
    assert find_kamailio() == find_program("kamailio")
    assert find_kamailio().startswith(("/usr/sbin/", "/usr/local/sbin/", "/sbin/"))


def test_missing_program_names_the_package(monkeypatch):
    with pytest.raises(ProgramMissing) as err:
        find_program("twinkle-console-nonexistent", "twinkle-console")
    assert "install it: apt-get install twinkle-console, or run ./install.sh" in str(err.value)
    monkeypatch.setenv("PATH", "/nonexistent")
    monkeypatch.setattr("referee.dut.programs.SBIN_DIRS", ("/nonexistent",))
    with pytest.raises(ProgramMissing, match="'twinkle-console' not found .*apt-get install twinkle-console"):
        driver_class("twinkle").find_program()
    with pytest.raises(KamailioMissing, match="apt-get install kamailio"):
        find_kamailio()


def test_preflight_refuses_a_missing_program_without_starting_anything(tmp_path, monkeypatch):
    profile = tmp_path / "needs.toml"
    profile.write_text('name = "x"\nkind = "proxy"\nlaunch = ["no-such-sip-proxy", "{port}"]\n'
                       'requires = ["kamailio", "no-such-helper"]\n')
    with pytest.raises(ProgramMissing, match=r"key 'launch': program 'no-such-sip-proxy' not found"):
        DutSession(load_profile(profile)).preflight()
    profile.write_text('name = "x"\nkind = "proxy"\nlaunch = ["{python}", "proxy.py", "{port}"]\n'
                       'requires = ["kamailio", "no-such-helper"]\n')
    with pytest.raises(ProgramMissing, match="'no-such-helper' not found"):
        DutSession(load_profile(profile)).start()       # start() runs the preflight first
    monkeypatch.setenv("PATH", "/nonexistent")
    monkeypatch.setattr("referee.dut.programs.SBIN_DIRS", ("/nonexistent",))
    with pytest.raises(ProgramMissing, match="apt-get install linphone-cli"):
        DutSession(load_profile(REPO / "duts" / "linphone.toml")).preflight()


def test_shipped_profiles_pass_preflight():
    for name in ("refphone", "refphone-tcp", "refphone-tls", "baresip", "linphone", "twinkle",
                 "kamailio", "kamailio-pbx"):
        profile = load_profile(REPO / "duts" / f"{name}.toml")
        for transport in profile.transports:
            DutSession(profile, transport=transport).preflight()
    assert load_profile(REPO / "duts" / "kamailio.toml").requires == ["kamailio"]
    assert load_profile(REPO / "duts" / "kamailio-pbx.toml").requires == ["kamailio"]


# -- profiles: transport / transports -------------------------------------------------------------

def test_profile_transports(tmp_path):
    p = load_profile(phone_profile(tmp_path, "refphone", ["tcp", "udp", "tls"]))
    assert (p.transport, p.transports) == ("tcp", ["tcp", "udp", "tls"])
    assert DutSession(p).transport == "tcp" and DutSession(p, transport="tls").transport == "tls"
    base = 'name = "x"\nkind = "phone"\naddress = "127.0.0.1:5080"\nroles = ["target"]\n'
    for extra, message in [
        ('transport = "udp"\ntransports = ["tcp"]\n', "give either `transport` or `transports`, not both"),
        ('transports = []\n', "must name at least one transport"),
        ('transports = ["udp", "sctp"]\n', "'sctp' is not one of tcp, tls, udp"),
        ('transports = ["tcp", "tcp"]\n', "lists a transport twice"),
        ('transport = "ws"\n', "'ws' is not one of udp, tcp, tls"),
        ('requires = "kamailio"\n', "key 'requires': must be a list of strings"),
    ]:
        path = tmp_path / "bad.toml"
        path.write_text(base + extra)
        with pytest.raises(ProfileError, match=message):
            load_profile(path)
    path = tmp_path / "console.toml"
    path.write_text('name = "c"\nkind = "phone"\ndriver = "console"\nroles = ["target"]\n'
                    'transports = ["udp", "tcp"]\nlaunch = ["{python}", "c.py", "--port", "{port}"]\n')
    with pytest.raises(ProfileError, match=r"launch command has no \{transport\}"):
        load_profile(path)


def test_uris_carry_the_transport(tmp_path):
    p = load_profile(phone_profile(tmp_path, "refphone", ["udp", "tcp", "tls"]))
    for transport, suffix in (("udp", ""), ("tcp", ";transport=tcp"), ("tls", ";transport=tls")):
        session = DutSession(p, transport=transport)
        session.address = ("127.0.0.1", 5090)
        assert session.uri_for("transferee") == f"sip:dut@127.0.0.1:5090{suffix}"
    pbx = load_profile(REPO / "duts" / "kamailio-pbx.toml")
    session = DutSession(pbx, transport="tcp")
    session.address = ("127.0.0.1", 5070)
    assert session.user_aor("alice") == "sip:1001@127.0.0.1:5070;transport=tcp"
    assert session.uri_for("pbx") == "sip:127.0.0.1:5070;transport=tcp"


# -- refusals ----------------------------------------------------------------------------------

@pytest.mark.parametrize("driver, transport, why", REFUSED)
def test_unsupported_transport_is_refused_at_start(tmp_path, driver, transport, why):
    session = DutSession(load_profile(phone_profile(tmp_path, driver, [transport])), transport=transport)
    with pytest.raises(TransportUnsupported) as err:
        session.start()
    text = str(err.value)
    assert why in text and f"cannot listen on {transport.upper()}" in text and "fix:" in text, text
    assert session.driver is None and session.certificates is None   # nothing was started


def test_transport_the_profile_does_not_list_is_refused(tmp_path):
    session = DutSession(load_profile(REPO / "duts" / "kamailio.toml"), transport="tls")
    with pytest.raises(TransportUnsupported, match=r"not declared for TLS: its profile lists udp, tcp"):
        session.preflight()


# -- calls over TCP / TLS, agents against the real products ---------------------------------------

async def _call_both_ways(session: DutSession) -> list[str]:
    """The agent calls the DUT, then the DUT calls the agent; returns the transports the
    agent's received requests came over (from its log)."""
    transport = session.transport
    agent = await Agent.start("alice", transport=transport, policy=session.policy, **session.agent_tls())
    try:
        call = await agent.call(session.uri_for("transferee"), dest=session.address, timeout=10)
        incoming = await asyncio.to_thread(session.driver.wait_event, "incoming", 10)
        assert incoming.get("request_uri").endswith(f";transport={transport}") or transport == "udp", incoming
        await agent.bye(call)
        await asyncio.to_thread(session.driver.wait_event, "disconnected", 10)

        handle = await asyncio.to_thread(session.driver.dial, agent.uri)
        invite = await agent.expect("INVITE", timeout=10)
        via = invite.message.header("Via")
        assert via.upper().startswith(f"SIP/2.0/{transport.upper()} "), f"INVITE from the DUT: Via {via!r}"
        call = await agent.answer(invite)
        await asyncio.to_thread(session.driver.wait_event, "confirmed", 10, call=handle)
        await agent.bye(call)
        await asyncio.to_thread(session.driver.wait_event, "disconnected", 10, call=handle)
        return sorted({e.transport for e in agent.log
                       if e.direction == "received" and isinstance(e.message, Request)})
    finally:
        await agent.close()


@pytest.mark.parametrize("driver, transport", SUPPORTED, ids=[f"{d}-{t}" for d, t in SUPPORTED])
def test_call_over_transport(tmp_path, driver, transport):
    session = DutSession(load_profile(phone_profile(tmp_path, driver, [transport])), transport=transport)
    cls = driver_class(driver)
    if cls.program:
        require_program(cls.program, cls.package)
    session.start()
    try:
        assert session.driver.transport == transport
        assert session.uri_for("x").endswith("" if transport == "udp" else f";transport={transport}")
        assert asyncio.run(_call_both_ways(session)) == [transport]
    finally:
        session.stop()
    assert session.certificates is None or not session.certificates.cert_file.exists()


def test_kamailio_proxy_over_tcp():
    """Two agents on TCP call each other through the launched Kamailio proxy profile."""
    require_program("kamailio")
    session = DutSession(load_profile(REPO / "duts" / "kamailio.toml"), transport="tcp").start()

    async def flow() -> tuple[str, str]:
        alice = await Agent.start("alice", transport="tcp", outbound=session.address)
        bob = await Agent.start("bob", transport="tcp")
        try:
            invite = await alice.invite(bob.uri)
            incoming = await bob.expect("INVITE", timeout=5)
            await bob.answer(incoming)
            await invite.final(5)
            call = invite.call
            record_route = incoming.message.header("Record-Route") or ""
            await alice.bye(call)
            received = {e.transport for e in bob.log if e.direction == "received"}
            return record_route, ",".join(sorted(received))
        finally:
            await alice.close()
            await bob.close()

    try:
        record_route, received = asyncio.run(flow())
    finally:
        session.stop()
    assert "transport=tcp" in record_route, record_route
    assert received == "tcp"


def test_console_program_on_the_transport_its_profile_declares(tmp_path):
    """A console DUT listens on what its profile declares, told by {transport}; the rest is refused."""
    path = tmp_path / "console.toml"
    path.write_text('name = "console test phone"\nkind = "phone"\ndriver = "console"\nuser = "dut"\n'
                    'roles = ["target", "transferor"]\ntransports = ["udp", "tcp"]\n'
                    'launch = ["{python}", "{repo}/tests/faulty/console_phone.py", "--host", "{host}", '
                    '"--port", "{port}", "--user", "{user}", "--answer", "{answer}", "--transport", "{transport}"]\n')
    profile = load_profile(path)
    with pytest.raises(TransportUnsupported, match="not declared for TLS: its profile lists udp, tcp"):
        DutSession(profile, transport="tls").start()
    session = DutSession(profile, transport="tcp").start()
    try:
        assert session.driver.transports == ("udp", "tcp")
        assert asyncio.run(_call_both_ways(session)) == ["tcp"]
    finally:
        session.stop()
