"""Profiles of the upper-tester drivers (operator, http, command): the examples load as written,
every mistake names the file, the key and the fix, and every credential is a secret."""

import pathlib
import re
import textwrap

import pytest

from referee.dut import ProfileError, load_profile
from referee.dut.upper_profile import expand, extension_of

REPO = pathlib.Path(__file__).resolve().parents[2]
EXAMPLES = REPO / "tests" / "upper"

HTTP = """\
name = "Desk phone"
kind = "phone"
address = "127.0.0.1:5060"
driver = "http"
roles = ["transferor"]
capabilities = ["transferor"]
[http]
auth = "digest"
username = "admin"
password = "pw-http-1"
[actions.dial]
url = "http://127.0.0.1:8080/api/dial?uri={target}"
[actions.transfer]
url = "http://127.0.0.1:8080/api/transfer?uri={target}"
"""


def write(tmp_path, text, name="x.toml") -> pathlib.Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    return path


def readme_examples() -> dict[str, str]:
    """The ```toml blocks of duts/README.md's upper-tester section, by their first line's name."""
    text = (REPO / "duts" / "README.md").read_text()
    section = text[text.index("## Devices the suite cannot drive"):]
    return {re.search(r'name = "([^"]+)"', block).group(1): block
            for block in re.findall(r"```toml\n(.*?)```", section, re.S)}


@pytest.mark.parametrize("path", sorted(EXAMPLES.glob("*.toml")), ids=lambda p: p.name)
def test_example_profiles_load(path):
    p = load_profile(path)
    assert p.driver in ("operator", "http", "command") and p.upper is not None
    assert p.address == ("127.0.0.1", 5060)


def test_readme_examples_load_as_written(tmp_path):
    examples = readme_examples()
    assert len(examples) >= 3
    drivers = set()
    for name, block in examples.items():
        p = load_profile(write(tmp_path, block))
        drivers.add(p.driver)
        assert p.name == name
    assert drivers == {"operator", "http", "command"}


def test_timeouts_default_and_per_action(tmp_path):
    op = load_profile(write(tmp_path, 'name = "x"\nkind = "phone"\naddress = "127.0.0.1:5060"\n'
                                      'driver = "operator"\nroles = ["transferor"]\n'))
    assert op.upper.action_timeout("transfer") == 60.0
    http = load_profile(write(tmp_path, HTTP.replace("[actions.dial]", "[actions]\ntimeout = 9\n[actions.dial]\n"
                                                     "timeout = 30")))
    assert (http.upper.action_timeout("dial"), http.upper.action_timeout("transfer"),
            http.upper.action_timeout("hold")) == (30.0, 9.0, 9.0)


@pytest.mark.parametrize("text, expected", [
    (HTTP.replace('driver = "http"', 'driver = "htp"'),
     "key 'driver': 'htp' is not one of refphone, baresip, linphone, twinkle, console, operator, http, command "
     "(fix: driver = \"http\")"),
    (HTTP.replace('address = "127.0.0.1:5060"\n', ''),
     "key 'address': missing: driver = \"http\" drives a device that runs by itself at its own address "
     "(fix: address = \"127.0.0.1:5060\")"),
    (HTTP.replace('driver = "http"', 'driver = "http"\nlaunch = ["phone"]'),
     "key 'launch': driver = \"http\" drives a device that runs by itself; the suite does not launch it "
     "(fix: remove `launch` and give the device's `address`)"),
    (HTTP.replace("[actions.transfer]", "[actions.tranfser]"),
     "key 'actions.tranfser': unknown action (fix: did you mean 'transfer'?)"),
    (HTTP.replace('url = "http://127.0.0.1:8080/api/transfer?uri={target}"',
                  'url = "http://127.0.0.1:8080/api/transfer?uri={traget}"'),
     "key 'actions.transfer': unknown placeholder {traget} (fix: use one of {target}, {extension}, {call}, "
     "{consult_call}, {code}, {mode}, {policy}, {host}, {port}, {user}, {username}, {password})"),
    (HTTP.replace('url = "http://127.0.0.1:8080/api/dial?uri={target}"',
                  'url = "http://phone.lab/api/dial?uri={target}"'),
     "key 'actions.dial.url': host 'phone.lab' must be an IP address literal or {host} (the suite never resolves "
     "names) (fix: url = \"http://{host}/api/...\")"),
    (HTTP.replace('url = "http://127.0.0.1:8080/api/dial?uri={target}"',
                  'url = "http://admin:pw-in-url@127.0.0.1/api/dial"'),
     "key 'actions.dial.url': carries credentials (user:password@host): the suite never writes them where reports "
     "could show them (fix: [http] username = \"...\"  password = \"...\")"),
    (HTTP.replace('[actions.transfer]\nurl = "http://127.0.0.1:8080/api/transfer?uri={target}"\n', ''),
     "key 'capabilities': 'transferor' needs the action 'transfer', and [actions.transfer] is missing (fix: add "
     "[actions.transfer] url = \"http://127.0.0.1:8080/api/transfer?to={target}\", or remove 'transferor')"),
    (HTTP.replace('auth = "digest"', 'auth = "kerberos"'),
     "key 'http.auth': 'kerberos' is not one of none, basic, digest (fix: use one of none, basic, digest)"),
    (HTTP.replace('password = "pw-http-1"\n', ''),
     "key 'http.auth': auth = \"digest\" needs a username and a password (fix: [http] username = \"admin\"  "
     "password = \"...\")"),
    (HTTP.replace("[actions.dial]", "[actions.dial]\nmethod = \"FETCH\""),
     "key 'actions.dial.method': 'FETCH' is not one of GET, POST, PUT, PATCH, DELETE (fix: method = \"POST\")"),
    (HTTP.replace("[actions.dial]", "[actions.dial]\nhandle = \"call=\\\\S+\""),
     "key 'actions.dial.handle': needs a group: the call handle is what group 1 matches (fix: handle = "
     "\"call=(\\\\S+)\")"),
    (HTTP.replace("[actions.dial]", "[actions.dial]\ntimeout = 0"),
     "key 'actions.dial.timeout': must be a number of seconds (0..600], got 0 (fix: timeout = 15)"),
    (HTTP.replace("[actions.dial]", "[actions.dial]\nrun = [\"x\"]"),
     "key 'actions.dial.run': unknown key (fix: use one of body, handle, headers, method, timeout, url)"),
    (HTTP.replace('driver = "http"', 'driver = "command"'),
     "key 'http': only used with driver = \"http\" (this profile has driver = 'command') (fix: remove [http], or "
     "set driver = \"http\")"),
    (HTTP.replace('driver = "http"', 'driver = "refphone"'),
     "key 'actions': only used with driver = \"operator\", \"http\" or \"command\" (this profile has driver = "
     "'refphone') (fix: remove [actions], or set driver = \"operator\", \"http\" or \"command\")"),
    ('name = "x"\nkind = "phone"\naddress = "127.0.0.1:5060"\ndriver = "command"\nroles = ["transferor"]\n'
     '[actions.dial]\nrun = []\n',
     "key 'actions.dial.run': missing, or not a non-empty list of command arguments (fix: run = [\"phonectl\", "
     "\"dial\", \"{target}\"])"),
    ('name = "x"\nkind = "phone"\naddress = "127.0.0.1:5060"\ndriver = "command"\nroles = ["transferor"]\n'
     '[actions.dial]\nrun = ["phonectl", "--pin", "{password}", "dial"]\n',
     "key 'actions.dial': uses {password} but no password is set (fix: [command] password = \"...\")"),
    ('name = "x"\nkind = "phone"\naddress = "127.0.0.1:5060"\ndriver = "command"\nroles = ["transferor"]\n',
     "key 'actions': driver = \"command\" needs at least one action (dial, answer, reject, hangup, hold, transfer, "
     "attended_transfer, answer_mode, refer_policy) (fix: [actions.dial] run = [\"phonectl\", \"dial\", "
     "\"{target}\"])"),
    ('name = "x"\nkind = "phone"\naddress = "127.0.0.1:5060"\ndriver = "operator"\nroles = ["transferor"]\n'
     '[actions.transfer]\nurl = "http://127.0.0.1/"\n',
     "key 'actions.transfer.url': unknown key (fix: use one of say, timeout)"),
])
def test_upper_profile_errors_name_key_and_fix(tmp_path, text, expected):
    with pytest.raises(ProfileError) as info:
        load_profile(write(tmp_path, text))
    assert str(info.value) == f"{tmp_path / 'x.toml'}: {expected}"


def test_errors_never_quote_a_password(tmp_path):
    text = HTTP.replace('url = "http://127.0.0.1:8080/api/dial?uri={target}"',
                        'url = "http://admin:pw-in-url@127.0.0.1/api/dial"')
    with pytest.raises(ProfileError) as info:
        load_profile(write(tmp_path, text))
    assert "pw-in-url" not in str(info.value)


def test_every_credential_is_a_secret(tmp_path):
    """Passwords of [http] / [command], and credentials written into URLs, headers, bodies and
    command lines: reports redact each of them."""
    text = HTTP.replace('url = "http://127.0.0.1:8080/api/dial?uri={target}"',
                        'url = "http://127.0.0.1:8080/api/dial?uri={target}&token=tok-in-query"\n'
                        'headers = { X-Api-Key = "key-in-header", Authorization = "Bearer bearer-in-header" }\n'
                        'method = "POST"\nbody = \'{"number": "{target}", "password": "pw-in-json"}\'')
    text = text.replace('url = "http://127.0.0.1:8080/api/transfer?uri={target}"',
                        'url = "http://127.0.0.1:8080/api/transfer"\nmethod = "POST"\n'
                        'body = "to={target}&pin=1&secret=pw-in-form"')
    p = load_profile(write(tmp_path, text))
    for secret in ("pw-http-1", "tok-in-query", "key-in-header", "bearer-in-header", "pw-in-json", "pw-in-form"):
        assert secret in p.secrets, secret
    assert "{target}" not in p.secrets and "pw-http-1" not in repr(p)

    command = load_profile(write(tmp_path, (
        'name = "x"\nkind = "phone"\naddress = "127.0.0.1:5060"\ndriver = "command"\nroles = ["transferor"]\n'
        '[command]\npassword = "pw-command"\n'
        '[actions.dial]\nrun = ["phonectl", "--password", "pw-option", "--token=tok-option", "-u", "admin:pw-curl", '
        '"--key", "{password}", "dial", "{target}"]\n')))
    assert sorted(command.secrets) == ["pw-command", "pw-curl", "pw-option", "tok-option"]


def test_upper_secrets_do_not_make_a_phone_look_like_it_has_credentials(tmp_path):
    """`credentials` (a scenario need) means PBX users with passwords, not an HTTP API password."""
    p = load_profile(write(tmp_path, HTTP))
    assert p.secrets == ["pw-http-1"] and p.missing(["credentials"]) == ["credentials"]


def test_placeholders():
    values = {"target": "sip:1003@127.0.0.1:5070;transport=tcp", "call": "7"}
    assert expand("/x?to={target}&c={call}&n={nothing}", values) == \
        "/x?to=sip:1003@127.0.0.1:5070;transport=tcp&c=7&n="
    assert expand('{"to": "{target}"}', values) == '{"to": "sip:1003@127.0.0.1:5070;transport=tcp"}'
    assert extension_of("sip:1003@127.0.0.1:5070;transport=tcp") == "1003"
    assert extension_of("sip:127.0.0.1:5070") == ""
