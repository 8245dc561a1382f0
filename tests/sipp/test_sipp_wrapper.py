"""referee.sipp: SIPp under pexpect, with real SIPp processes on the loopback."""

from __future__ import annotations

import os
import socket
from pathlib import Path

import pytest

from referee.sipp import (Sipp, SippCallsFailed, SippNotFound, SippPortInUse, SippScenarioError,
                          SippTemplateError, run)
from referee.sipp.screen import parse_screen
from referee.sipp.stats import duration_seconds, split_log_entries
from referee.sipp.template import render_text, template_params
from referee.sipp.terminal import Terminal

pytestmark = pytest.mark.timeout(60)


def _pid_gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    # a zombie still answers kill(0); it is reaped if /proc says so
    try:
        return Path(f"/proc/{pid}/stat").read_text().split()[2] == "Z"
    except FileNotFoundError:
        return True


def _udp_port_bound(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        try:
            sock.bind((host, port))
        except OSError:
            return True
    return False


# -- pure parsing ------------------------------------------------------------------------------

def test_terminal_replays_cursor_addressing_and_relative_moves() -> None:
    term = Terminal(10, 40)
    term.feed("\x1b[H\x1b[Jhello\r\x1b[1Bworld\x1b[1;20Htop\x1b[3;2H12\x08\x083\x1b[5Cx")
    assert term.lines()[:3] == ["hello              top", "world", " 32    x"]
    term.feed("\x1b[2;10r\x1b[10;1H\nscrolled")  # LF at the bottom of the scroll region scrolls it
    lines = term.lines()
    assert lines[0] == "hello              top"
    assert lines[1] == " 32    x" and lines[-1] == "scrolled"


def test_parse_scenario_and_statistics_screens() -> None:
    scenario = [
        "------------------------------ Scenario Screen -------- [1-9]: Change Screen --",
        "  Call rate (length)   Port   Total-time  Total-calls  Remote-host",
        "  12.0(0 ms)/1.000s   5061       3.01 s           21  127.0.0.1:5060(UDP)",
        "",
        "  12 new calls during 1.004 s period      1 ms scheduler resolution",
        "  2 calls (limit 36)                      Peak was 3 calls, after 1 s",
        "                                 Messages  Retrans   Timeout   Unexpected-Msg",
        "      INVITE ---------->         21        0         0",
        "         200 <----------  E-RTD1 21        0         0         0",
        "------ [+|-|*|/]: Adjust rate ---- [q]: Soft exit ---- [p]: Pause traffic -----",
    ]
    snap = parse_screen(scenario)
    assert (snap.kind, snap.port, snap.target_rate, snap.total_calls) == ("scenario", 5061, 12.0, 21)
    assert snap.current_calls == 2 and snap.period_calls == 12
    assert snap.messages[1].label == "200 <----------" and snap.messages[1].messages == 21
    assert not snap.paused and not snap.terminated
    stats = [
        "----------------------------- Statistics Screen ------- [1-9]: Change Screen --",
        "  Call Rate              |    5.000 cps              |    4.980 cps",
        "  Total Calls created    |                           |       11",
        "  Current Calls          |        1                  |",
        "  Successful call        |        1                  |       10",
        "  Failed call            |        0                  |        2",
        "------------------------------ Test Terminated --------------------------------",
    ]
    snap = parse_screen(stats)
    assert (snap.kind, snap.call_rate, snap.successful, snap.failed) == ("statistics", 5.0, 10, 2)
    assert snap.terminated
    # a screen caught mid-redraw (no footer bar yet) is not taken as a screen
    assert parse_screen(scenario[:5]).kind == "partial"


def test_stats_helpers() -> None:
    assert duration_seconds("00:01:02:500000") == 62.5
    assert duration_seconds("bogus") is None
    log = ("2026-01-01\t10:00:00.000001\t1.000001: first problem"
           "2026-01-01\t10:00:00.000002\t1.000002: second\n")
    assert split_log_entries(log) == ["first problem", "second"]


def test_template_rendering_rules(tmp_path: Path) -> None:
    template = tmp_path / "t.xml"
    template.write_text(
        '<?xml version="1.0"?>\n<!--\n  @param who  required  name\n  @param extra  ""  optional header\n'
        '  @param rate  "1 2"  quoted default\n-->\n'
        "<scenario><send><![CDATA[\nX-Who: ${who} [service] [$var]\nX-Extra: ${extra}\n${extra}\n"
        "X-Rate: ${rate}\n]]></send></scenario>\n")
    assert template_params(template)["who"].required
    text = render_text(template, {"who": "bob"})
    assert "X-Who: bob [service] [$var]" in text
    assert "X-Extra" not in text and "X-Rate: 1 2" in text
    assert render_text(template, {"who": "bob", "extra": "e"}).count("e\n") >= 2
    with pytest.raises(SippTemplateError, match="missing required parameter.*who"):
        render_text(template, {})
    with pytest.raises(SippTemplateError, match="unknown parameter.*whom.*takes: who, extra, rate"):
        render_text(template, {"who": "b", "whom": "c"})


# -- failures ----------------------------------------------------------------------------------

def test_missing_binary_says_how_to_install() -> None:
    with pytest.raises(SippNotFound, match="apt-get install sip-tester"):
        Sipp("builtin:uas", binary="/nonexistent/sipp")


def test_scenario_that_is_not_well_formed_xml(tmp_path: Path) -> None:
    broken = tmp_path / "broken.xml"
    broken.write_text('<?xml version="1.0"?>\n<scenario name="b">\n  <recv response="200"\n</scenario>\n')
    with pytest.raises(SippTemplateError, match=r"not well-formed XML.*line 4"):
        Sipp(broken).start()


def test_scenario_sipp_rejects_quotes_sipp(tmp_path: Path) -> None:
    unknown = tmp_path / "unknown.xml"
    unknown.write_text('<?xml version="1.0"?>\n<scenario name="u">\n  <sned>hi</sned>\n</scenario>\n')
    with pytest.raises(SippScenarioError, match="Unknown element 'sned'"):
        Sipp(unknown, "127.0.0.1:9").start()


def test_port_in_use_is_reported_with_sipp_words() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as holder:
        holder.bind(("127.0.0.1", 0))
        port = holder.getsockname()[1]
        with pytest.raises(SippPortInUse, match=rf"127\.0\.0\.1:{port}.*Address already in use"):
            Sipp("builtin:uas", port=port).start()


def test_unanswered_peer_fails_calls_with_a_clear_reason() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as silent:  # bound, never answers
        silent.bind(("127.0.0.1", 0))
        result = run("builtin:uac", silent.getsockname(), calls=1, recv_timeout_ms=800, timeout=20)
    assert result.failed == 1 and result.successful == 0
    assert result.exit_code == 1
    assert "FailedTimeoutOnRecv" in result.failure_reasons
    with pytest.raises(SippCallsFailed, match="never answered.*FailedTimeoutOnRecv"):
        result.check()


# -- running -----------------------------------------------------------------------------------

def test_ready_detection_and_stop_reaps() -> None:
    uas = Sipp("builtin:uas").start()
    try:
        assert uas.alive()
        assert _udp_port_bound(*uas.address)
        screen = uas.screen()
        assert screen.kind == "scenario" and screen.port == uas.port
        assert "Server Mode" in screen.footer
    finally:
        result = uas.stop()
    assert not uas.alive() and _pid_gone(uas.pid or 0)
    assert result.exit_code is not None or result.signal is not None
    assert not result.work_dir.exists()  # our own work dir is removed


def test_run_collects_statistics_and_response_times() -> None:
    with Sipp("builtin:uas", calls=5) as uas:
        result = run("builtin:uac", uas.address, calls=5, rate=20, timeout=20, trace_rtt=True, check=True)
        server = uas.wait(10)
    assert (result.successful, result.failed, result.created) == (5, 0, 5)
    assert result.exit_code == 0 and result.ok
    assert result.target_rate == 20 and result.call_rate > 0
    assert len(result.rtt) == 5 and all(s.rtd == "1" for s in result.rtt)
    assert "1" in result.response_times
    assert any(row.label.startswith("INVITE") and row.messages == 5 for row in result.messages)
    assert "Statistics Screen" in result.screen
    assert server.successful == 5 and server.exit_code == 0


def test_keys_change_rate_pause_and_quit() -> None:
    with Sipp("builtin:uas", timeout=40) as uas:
        uac = Sipp("builtin:uac", uas.address, rate=5, timeout=40).start()
        try:
            assert uac.screen().target_rate == 5
            assert uac.set_rate(17).target_rate == 17        # '*' then '+' x2
            assert uac.set_rate(6).target_rate == 6          # '/' then '-'
            uac.rate_up()
            uac.wait_screen(lambda s: s.target_rate == 7, 5, "rate 7")
            assert uac.pause().paused
            assert not uac.resume().paused
            stats = uac.show(2)
            assert stats.kind == "statistics" and stats.call_rate is not None
            uac.wait_screen(lambda s: (s.successful or 0) >= 3, 10, "3 successful calls")
            uac.show(1)
            progress = uac.wait_calls(4, 15)     # from the periodic statistics file
            assert progress.successful >= 4 and progress.failed == 0
            assert progress.target_rate == 7 and progress.created >= 4
            result = uac.quit(timeout=10)
        finally:
            uac.stop()
    assert result.exit_code == 0 and not result.timed_out
    assert result.successful >= 3 and result.failed == 0
    assert result.target_rate == 7


def test_wall_clock_timeout_stops_a_run_that_never_ends() -> None:
    uas = Sipp("builtin:uas", timeout=1.5).start()
    result = uas.wait()
    assert result.timed_out and not uas.alive()
    assert "wall-clock timeout" in result.summary()
