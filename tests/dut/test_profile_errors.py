"""DUT profiles: the two public minimal examples load as written; errors name file, key and fix."""

import pathlib
import textwrap

import pytest

from referee.dut import ProfileError, load_profile

PHONE = """\
name = "Example phone"
kind = "phone"              # phone | pbx | proxy
address = "127.0.0.1:5080"  # where the suite sends calls and requests
transport = "udp"
answers = "auto"            # the phone answers incoming calls by itself
roles = ["transferee", "target"]
"""

PBX = """\
name = "Example PBX"
kind = "pbx"
address = "127.0.0.1:5070"
transport = "udp"
register = false
[users.alice]
extension = "1001"
port = 6001                 # the PBX knows alice at sip:alice@127.0.0.1:6001
[users.bob]
extension = "1002"
port = 6002
[users.carol]
extension = "1003"
port = 6003
"""


def write(tmp_path, text, name="x.toml") -> pathlib.Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    return path


def test_minimal_phone_profile_works_as_written(tmp_path):
    p = load_profile(write(tmp_path, PHONE))
    assert (p.kind, p.address, p.transport, p.answers, p.roles) == (
        "phone", ("127.0.0.1", 5080), "udp", "auto", ["transferee", "target"])
    assert p.can_play("transferee") and not p.can_play("transferor")


def test_minimal_pbx_profile_works_as_written(tmp_path):
    p = load_profile(write(tmp_path, PBX))
    assert p.kind == "pbx" and p.address == ("127.0.0.1", 5070) and not p.register
    assert [(u.name, u.extension, u.port) for u in p.users.values()] == [
        ("alice", "1001", 6001), ("bob", "1002", 6002), ("carol", "1003", 6003)]


@pytest.mark.parametrize("text, expected", [
    (PHONE.replace('kind = "phone"', 'kind = "phon"'),
     "x.toml: key 'kind': 'phon' is not one of phone, pbx, proxy (fix: kind = \"phone\")"),
    (PHONE.replace('address = "127.0.0.1:5080"', 'address = "127.0.0.1"'),
     "x.toml: key 'address': '127.0.0.1' is not host:port (fix: address = \"127.0.0.1:5080\")"),
    (PHONE.replace('address = "127.0.0.1:5080"', 'adress = "127.0.0.1:5080"'),
     "x.toml: key 'adress': unknown key (fix: did you mean 'address'?)"),
    (PHONE.replace('roles = ["transferee", "target"]', 'roles = ["transferee", "tagret"]'),
     "x.toml: key 'roles': 'tagret' is not one of target, transferee, transferor (fix: did you mean 'target'?)"),
    (PHONE.replace('transport = "udp"', 'transport = 5'),
     "x.toml: key 'transport': must be a string, got int (fix: transport = \"...\")"),
    (PHONE.replace('roles = ["transferee", "target"]', ''),
     "x.toml: key 'roles': a phone must declare the roles it can play (fix: roles = [\"transferee\", \"target\"])"),
    (PBX.replace("port = 6002", "port = 70000"),
     "x.toml: key 'users.bob.port': must be a port number, got 70000 (fix: port = 6001)"),
    (PBX.replace("register = false", "register = true"),
     "x.toml: key 'users.alice.password': register = true needs a password for every user (fix: password = \"...\")"),
    (PBX[:PBX.index("[users.carol]")],
     "x.toml: key 'users': a PBX profile needs three users (transferor, transferee, target); found 2 "
     "(fix: [users.alice] extension = \"1001\" port = 6001)"),
    ('name = "x"\nkind = "phone"\nroles = ["target"]\n',
     "x.toml: key 'address': missing (an external DUT needs its address) (fix: address = \"127.0.0.1:5080\")"),
])
def test_profile_errors_name_key_and_fix(tmp_path, text, expected):
    with pytest.raises(ProfileError) as info:
        load_profile(write(tmp_path, text))
    assert str(info.value).replace(str(tmp_path) + "/", "") == expected


def test_bad_toml_and_missing_file(tmp_path):
    with pytest.raises(ProfileError) as info:
        load_profile(write(tmp_path, 'name = "x"\nkind = phone\n'))
    assert "invalid TOML" in str(info.value)
    with pytest.raises(ProfileError) as info:
        load_profile(tmp_path / "missing.toml")
    assert "file not found" in str(info.value)


def test_password_never_in_repr(tmp_path):
    text = PBX.replace("register = false", "register = true")
    for user in ("alice", "bob", "carol"):
        text = text.replace(f"[users.{user}]", f"[users.{user}]\npassword = \"pw-{user}-secret\"")
    p = load_profile(write(tmp_path, text))
    assert "secret" not in repr(p) and sorted(p.secrets) == ["pw-alice-secret", "pw-bob-secret", "pw-carol-secret"]


def test_every_shipped_profile_loads():
    duts = pathlib.Path(__file__).resolve().parents[2] / "duts"
    for path in duts.rglob("*.toml"):
        load_profile(path)
