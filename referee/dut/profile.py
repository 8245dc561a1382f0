"""DUT profiles (duts/*.toml): what the device is, where it listens, what it can do.

A profile error names the file, the key and the fix:
    duts/x.toml: key 'kind': 'phon' is not one of phone, pbx, proxy (fix: kind = "phone")
"""

from __future__ import annotations

import dataclasses
import difflib
import ipaddress
import pathlib
import re
import tomllib

from .driver import CAPABILITIES, TRANSPORTS
from .upper_profile import UPPER_DRIVERS, UpperTester, parse_upper

KINDS = ("phone", "pbx", "proxy")
PHONE_ROLES = ("transferee", "transferor", "target")
DRIVERS = ("refphone", "baresip", "linphone", "twinkle", "console", *UPPER_DRIVERS)
TOP_KEYS = {"name", "kind", "address", "transport", "transports", "requires", "answers", "roles", "capabilities", "register", "users", "port_base",
            "driver", "launch", "ready", "ready_timeout", "stop_timeout", "domain", "user", "notes", "outbound", "known_failures", "load",
            "actions", "http", "command", "parallel"}
USER_KEYS = {"extension", "port", "password", "username", "host"}

BUILTIN_PROFILE = pathlib.Path(__file__).resolve().parents[2] / "duts" / "refphone.toml"


class ProfileError(ValueError):
    def __init__(self, path: pathlib.Path | str, key: str | None, message: str, fix: str = "") -> None:
        where = f"{path}: key '{key}'" if key else str(path)
        text = f"{where}: {message}" + (f" (fix: {fix})" if fix else "")
        super().__init__(text)
        self.path, self.key = str(path), key


@dataclasses.dataclass
class User:
    name: str
    extension: str
    port: int
    password: str | None = None
    username: str | None = None
    host: str = "127.0.0.1"

    def __repr__(self) -> str:   # never show the password
        return f"User({self.name!r}, extension={self.extension!r}, port={self.port})"


@dataclasses.dataclass
class Profile:
    path: pathlib.Path
    name: str
    kind: str
    address: tuple[str, int] | None      # None: a launched DUT gets a free port at start
    transport: str = "udp"               # the first of `transports` (the default for a session)
    answers: str = "auto"
    roles: list[str] = dataclasses.field(default_factory=list)
    capabilities: set[str] = dataclasses.field(default_factory=set)
    register: bool = False
    users: dict[str, User] = dataclasses.field(default_factory=dict)
    driver: str | None = None
    launch: list[str] | None = None
    ready: str = "READY"
    ready_timeout: float = 15.0
    stop_timeout: float = 5.0
    domain: str | None = None
    user: str | None = None             # user part the suite puts in URIs to a phone (default: the role)
    notes: str = ""
    # test purpose id -> why this DUT is known to fail it (reported as an expected failure)
    known_failures: dict[str, str] = dataclasses.field(default_factory=dict)
    # pass criteria and shape of the load steps (suites/load/README.md documents the keys)
    load: dict = dataclasses.field(default_factory=dict)
    # every transport the DUT listens on (profile `transport = "udp"` or `transports = [...]`)
    transports: list[str] = dataclasses.field(default_factory=lambda: ["udp"])
    # programs a launched DUT needs besides its launch command (checked before it starts)
    requires: list[str] = dataclasses.field(default_factory=list)
    # driver = "operator" | "http" | "command": how each action is asked for (upper_profile.py)
    upper: UpperTester | None = None
    # how many tests may run against the DUT at once (None: one for a device the tests share,
    # referee's default for DUTs it launches per test)
    parallel: int | None = None

    @property
    def secrets(self) -> list[str]:
        """Every password in the profile (users', and those of the upper-tester keys: [http],
        [command], credentials in action URLs, headers, bodies, commands): reports never show them."""
        users = [u.password for u in self.users.values() if u.password]
        return users + [s for s in (self.upper.secrets if self.upper else []) if s not in users]

    def can_play(self, role: str) -> bool:
        if self.kind == "phone":
            return role in self.roles
        return role == self.kind

    def missing(self, needs: list[str]) -> list[str]:
        """The needs of a test purpose this profile does not meet: its roles and capabilities, plus
        `driver` (the DUT can be made to act), `register` (users register), `credentials` (users
        have passwords) and a transport name (the DUT listens on it)."""
        have = self.capabilities | set(self.roles) | set(self.transports)
        if self.driver:
            have |= {"driver"}
        if self.register:
            have |= {"register"}
        if any(u.password for u in self.users.values()):
            have |= {"credentials"}
        return [n for n in needs if n not in have]


def _suggest(word: str, choices) -> str:
    close = difflib.get_close_matches(str(word), list(choices), n=1)
    return f"did you mean '{close[0]}'?" if close else f"use one of {', '.join(choices)}"


def parse_address(text: str, path, key: str = "address") -> tuple[str, int]:
    m = re.fullmatch(r"\[?([0-9A-Za-z.:_-]+?)\]?:(\d{1,5})", str(text).strip())
    if not m or not 0 < int(m.group(2)) < 65536:
        raise ProfileError(path, key, f"{text!r} is not host:port", 'address = "127.0.0.1:5080"')
    host = m.group(1)
    try:
        ipaddress.ip_address(host)
    except ValueError:
        if host != "localhost":
            raise ProfileError(path, key, f"host {host!r} must be an IP address literal",
                               'address = "127.0.0.1:5080"') from None
        host = "127.0.0.1"
    return host, int(m.group(2))


def load_profile(path: pathlib.Path | str) -> Profile:
    path = pathlib.Path(path)
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ProfileError(path, None, "file not found", "pass an existing profile, e.g. --dut duts/refphone.toml") from None
    except tomllib.TOMLDecodeError as exc:
        raise ProfileError(path, None, f"invalid TOML: {exc}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ProfileError(path, None, f"cannot read: {exc}") from None
    return _build(path, data)


def _build(path: pathlib.Path, data: dict) -> Profile:
    for key in data:
        if key not in TOP_KEYS:
            raise ProfileError(path, key, "unknown key", _suggest(key, sorted(TOP_KEYS)))

    def text(key: str, default: str | None = None, choices=None) -> str | None:
        if key not in data:
            if default is None:
                return None
            return default
        value = data[key]
        if not isinstance(value, str):
            raise ProfileError(path, key, f"must be a string, got {type(value).__name__}", f'{key} = "..."')
        if choices and value not in choices:
            raise ProfileError(path, key, f"{value!r} is not one of {', '.join(choices)}",
                               f'{key} = "{difflib.get_close_matches(value, choices, 1)[0] if difflib.get_close_matches(value, choices, 1) else choices[0]}"')
        return value

    def string_list(key: str, choices=None) -> list[str]:
        value = data.get(key, [])
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise ProfileError(path, key, "must be a list of strings", f'{key} = ["..."]')
        for v in value:
            if choices and v not in choices:
                raise ProfileError(path, key, f"{v!r} is not one of {', '.join(sorted(choices))}", _suggest(v, sorted(choices)))
        return value

    name = text("name")
    if not name:
        raise ProfileError(path, "name", "missing", 'name = "My PBX"')
    kind = text("kind", choices=KINDS)
    if kind is None:
        raise ProfileError(path, "kind", "missing", 'kind = "phone"  # phone | pbx | proxy')
    driver = text("driver", choices=DRIVERS)
    launch = data.get("launch")
    if driver == "console" and launch is None:
        raise ProfileError(path, "launch", "driver = \"console\" needs the console program to launch",
                           'launch = ["{python}", "my_console.py", "--port", "{port}"]')
    if launch is not None and (not isinstance(launch, list) or not launch or not all(isinstance(a, str) for a in launch)):
        raise ProfileError(path, "launch", "must be a non-empty list of command arguments",
                           'launch = ["my-dut", "--port", "{port}"]')
    address = None
    if "address" in data:
        address = parse_address(data["address"], path)
    elif driver is None and launch is None:
        raise ProfileError(path, "address", "missing (an external DUT needs its address)", 'address = "127.0.0.1:5080"')
    register = data.get("register", False)
    if not isinstance(register, bool):
        raise ProfileError(path, "register", "must be true or false", "register = false")
    roles = string_list("roles", PHONE_ROLES)
    if kind == "phone" and not roles:
        raise ProfileError(path, "roles", "a phone must declare the roles it can play",
                           'roles = ["transferee", "target"]')
    port_base = data.get("port_base", 0)
    if isinstance(port_base, bool) or not isinstance(port_base, int) or not 0 <= port_base < 65500:
        raise ProfileError(path, "port_base", f"must be a port number, got {port_base!r}", "port_base = 25060")
    users = _users(path, data.get("users", {}), register, port_base)
    if kind == "pbx" and len(users) < 3:
        raise ProfileError(path, "users", f"a PBX profile needs three users (transferor, transferee, target); "
                                          f"found {len(users)}", "[users.alice] extension = \"1001\" port = 6001")
    transports = _transports(path, data, text, string_list)
    if driver == "console" and transports != ["udp"] and not any("{transport}" in a for a in launch):
        raise ProfileError(path, "launch", f"the console program is declared for {', '.join(transports)} "
                                           f"but its launch command has no {{transport}} to tell it which one",
                           'launch = [..., "--transport", "{transport}"]')
    requires = string_list("requires")
    if any(not r.strip() for r in requires):
        raise ProfileError(path, "requires", "program names must not be empty", 'requires = ["kamailio"]')

    def number(key: str, default: float) -> float:
        value = data.get(key, default)
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value <= 300:
            raise ProfileError(path, key, f"must be a number of seconds (0..300], got {value!r}", f"{key} = {default}")
        return float(value)
    return Profile(
        path=path, name=name, kind=kind, address=address,
        transport=transports[0], transports=transports, requires=requires, answers=text("answers", "auto", ("auto", "manual")),
        roles=roles, capabilities=set(string_list("capabilities", sorted(CAPABILITIES))), register=register,
        users=users, driver=driver, launch=launch, ready=text("ready", "READY"),
        ready_timeout=number("ready_timeout", 15.0), stop_timeout=number("stop_timeout", 5.0),
        domain=text("domain"), user=text("user"), notes=text("notes", ""),
        known_failures=_known_failures(path, data.get("known_failures", {})),
        load=_load_table(path, data.get("load", {})),
        upper=parse_upper(path, data, driver, set(string_list("capabilities")),
                          lambda key, message, fix: ProfileError(path, key, message, fix)),
        parallel=_parallel(path, data, kind, bool(driver or launch), users))


def _parallel(path, data: dict, kind: str, launched: bool, users: dict) -> int | None:
    """`parallel = N`: the DUT takes N tests (calls) at once. Not a PBX the tests share: every
    test uses the same users (one set of extensions and registrations), so two tests at once
    would get each other's calls; nor users on fixed ports (the agents of two tests cannot both
    listen there)."""
    if "parallel" not in data:
        return None
    value = data["parallel"]
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 64:
        raise ProfileError(path, "parallel", f"must be a whole number of tests from 1 to 64, got {value!r}",
                           "parallel = 4")
    if value > 1 and kind == "pbx" and not launched:
        raise ProfileError(path, "parallel", "a PBX takes one test at a time: every test uses the same users, so "
                                             "two at once would get each other's calls", "parallel = 1")
    fixed = [u.name for u in users.values() if u.port]
    if value > 1 and fixed:
        raise ProfileError(path, "parallel", f"users {', '.join(fixed)} listen on fixed ports: one test at a time",
                           "parallel = 1, or users without a port (register = true)")
    return value


def _transports(path, data: dict, text, string_list) -> list[str]:
    """`transport = "udp"` (one) or `transports = ["udp", "tcp", "tls"]` (several; the first is
    the default); not both."""
    if "transport" in data and "transports" in data:
        raise ProfileError(path, "transports", "give either `transport` or `transports`, not both",
                           'transports = ["udp", "tcp"]')
    if "transports" in data:
        transports = string_list("transports", TRANSPORTS)
        if not transports:
            raise ProfileError(path, "transports", "must name at least one transport", 'transports = ["udp"]')
        if len(set(transports)) != len(transports):
            raise ProfileError(path, "transports", f"lists a transport twice: {transports}",
                               f"transports = {list(dict.fromkeys(transports))}".replace("'", '"'))
        return list(transports)
    return [text("transport", "udp", TRANSPORTS)]


def _load_table(path, node) -> dict:
    if not isinstance(node, dict):
        raise ProfileError(path, "load", "must be a table of load criteria", "[load] rate = [20, 50]  duration = 30")
    return dict(node)


def _known_failures(path, node) -> dict[str, str]:
    if not isinstance(node, dict) or not all(isinstance(k, str) and isinstance(v, str) and v for k, v in node.items()):
        raise ProfileError(path, "known_failures", "must be a table of test purpose id = \"why it fails\"",
                           '[known_failures] TE-MULTI-001 = "omits the Event id"')
    return dict(node)


def _users(path, node, register: bool, port_base: int = 0) -> dict[str, User]:
    """The PBX users. A user's port: its own `port`; else `port_base` + its index (alice +0, bob
    +1 ...); else 0 — a free port each run, which the PBX learns when the user registers (so two
    runs on one machine never collide)."""
    if not isinstance(node, dict):
        raise ProfileError(path, "users", "must be a table of users", "[users.alice]")
    users: dict[str, User] = {}
    for uname, spec in node.items():
        key = f"users.{uname}"
        if not isinstance(spec, dict):
            raise ProfileError(path, key, "must be a table", f"[{key}] extension = \"1001\" port = 6001")
        for k in spec:
            if k not in USER_KEYS:
                raise ProfileError(path, f"{key}.{k}", "unknown key", _suggest(k, sorted(USER_KEYS)))
        ext = spec.get("extension")
        if not isinstance(ext, str) or not ext:
            raise ProfileError(path, f"{key}.extension", "missing or not a string", f'extension = "1001"')
        port = spec.get("port", port_base + len(users) if port_base else 0)
        if isinstance(port, bool) or not isinstance(port, int) or not 0 <= port < 65536:
            raise ProfileError(path, f"{key}.port", f"must be a port number, got {port!r}", "port = 6001")
        if port == 0 and not register:
            raise ProfileError(path, f"{key}.port", "a user that does not register needs a fixed port (the PBX "
                                                   "sends its calls there)", "port = 6001, or register = true, "
                                                                             "or port_base = 6000")
        password = spec.get("password")
        if register and not isinstance(password, str):
            raise ProfileError(path, f"{key}.password", "register = true needs a password for every user",
                               'password = "..."')
        users[uname] = User(uname, ext, port, password, spec.get("username"), spec.get("host", "127.0.0.1"))
    return users
