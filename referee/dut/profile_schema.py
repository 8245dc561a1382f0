"""The JSON Schema of DUT profiles (duts/*.toml), built from the names profile.py accepts, so the
two cannot drift apart (a test checks every key profile.py knows has a schema entry). Editors
that validate TOML against a JSON Schema (Even Better TOML / taplo: `#:schema path` on the first
line) complete and check profiles with it; `referee schema profile` prints it.

profile.py stays the reference for what a profile means: it also checks what a schema cannot
say (an address that is an IP literal, a PBX with three users, a launched console driver).
"""

from __future__ import annotations

from .driver import CAPABILITIES, TRANSPORTS
from .profile import DRIVERS, KINDS, PHONE_ROLES, USER_KEYS
from .upper_profile import ACTION_KEYS, ACTIONS, AUTH_SCHEMES, COMMAND_KEYS, HTTP_KEYS, HTTP_METHODS

SCHEMA_ID = "https://referee.invalid/schemas/profile.schema.json"
SECONDS = {"type": "number", "exclusiveMinimum": 0, "maximum": 300}
PORT = {"type": "integer", "minimum": 0, "maximum": 65535}
HOSTPORT = {"type": "string", "pattern": r"^\[?[0-9A-Za-z.:_-]+\]?:\d{1,5}$",
            "description": "host:port, the host an IP address (or localhost), e.g. 127.0.0.1:5080"}
STRINGS = {"type": "array", "items": {"type": "string"}}
HEADERS = {"type": "object", "additionalProperties": {"type": "string"}}


def _action_schema() -> dict:
    keys = set().union(*ACTION_KEYS.values())
    props = {
        "timeout": dict(SECONDS, description="seconds to wait for the SIP that shows the action"),
        "say": {"type": "string", "description": "operator: the instruction shown for this action"},
        "url": {"type": "string", "description": "http: the URL template ({target}, {extension}, {call} ...)"},
        "method": {"enum": list(HTTP_METHODS)},
        "body": {"type": "string"},
        "headers": HEADERS,
        "run": dict(STRINGS, minItems=1, description="command: the command line template"),
        "handle": {"type": "string", "description": "regular expression whose group 1 is the call handle"},
    }
    assert keys <= set(props), f"profile_schema: action keys without a schema: {keys - set(props)}"
    return {"type": "object", "additionalProperties": False, "properties": props}


def profile_schema() -> dict:
    user = {"type": "object", "additionalProperties": False, "required": ["extension"], "properties": {
        "extension": {"type": "string", "minLength": 1},
        "port": dict(PORT, description="where this user's agent listens (0 or absent with register = true: a "
                                       "free port, learned by the PBX from the REGISTER)"),
        "password": {"type": "string", "description": "never written to any report"},
        "username": {"type": "string", "description": "digest user name (default: the extension)"},
        "host": {"type": "string", "description": "the address this user's agent listens on"}}}
    assert set(user["properties"]) == USER_KEYS, "profile_schema: user keys out of step with profile.py"
    properties = {
        "name": {"type": "string", "minLength": 1, "description": "shown in every report"},
        "kind": {"enum": list(KINDS)},
        "address": HOSTPORT,
        "transport": {"enum": list(TRANSPORTS)},
        "transports": {"type": "array", "items": {"enum": list(TRANSPORTS)}, "minItems": 1, "uniqueItems": True,
                       "description": "every transport the DUT listens on: each test purpose runs over each"},
        "requires": dict(STRINGS, description="programs a launched DUT needs (checked before the run)"),
        "answers": {"enum": ["auto", "manual"]},
        "roles": {"type": "array", "items": {"enum": list(PHONE_ROLES)}},
        "capabilities": {"type": "array", "items": {"enum": sorted(CAPABILITIES)}},
        "register": {"type": "boolean"},
        "users": {"type": "object", "additionalProperties": user},
        "port_base": dict(PORT, description="users without a port listen on port_base + their index"),
        "parallel": {"type": "integer", "minimum": 1, "maximum": 64,
                     "description": "test purposes an external DUT can take at once (default 1)"},
        "driver": {"enum": list(DRIVERS)},
        "launch": dict(STRINGS, minItems=1, description="the command that starts the DUT ({host}, {port}, "
                                                        "{python}, {repo}, {profile_dir})"),
        "ready": {"type": "string", "description": "the line (regular expression) a launched DUT prints when up"},
        "ready_timeout": SECONDS,
        "stop_timeout": SECONDS,
        "domain": {"type": "string"},
        "user": {"type": "string", "description": "the user part the suite puts in URIs to a phone"},
        "notes": {"type": "string"},
        "outbound": HOSTPORT,
        "known_failures": {"type": "object", "additionalProperties": {"type": "string", "minLength": 1},
                           "description": "test purpose id -> why this DUT is known to fail it"},
        "load": {"type": "object", "description": "criteria of the load steps (suites/load/README.md)"},
        "actions": {"type": "object", "description": "upper-tester drivers: how each action is asked for",
                    "properties": {"timeout": SECONDS, **{a: {"$ref": "#/$defs/action"} for a in ACTIONS}},
                    "additionalProperties": False},
        "http": {"type": "object", "additionalProperties": False, "properties": {
            "auth": {"enum": list(AUTH_SCHEMES)}, "username": {"type": "string"}, "password": {"type": "string"},
            "timeout": SECONDS, "headers": HEADERS}},
        "command": {"type": "object", "additionalProperties": False, "properties": {
            "timeout": SECONDS, "username": {"type": "string"}, "password": {"type": "string"}}},
    }
    assert set(properties["http"]["properties"]) == HTTP_KEYS and set(properties["command"]["properties"]) == \
        COMMAND_KEYS, "profile_schema: [http]/[command] keys out of step with upper_profile.py"
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": SCHEMA_ID,
        "title": "referee DUT profile (a phone, PBX or proxy under test)",
        "type": "object",
        "additionalProperties": False,
        "required": ["name", "kind"],
        "properties": properties,
        "$defs": {"action": _action_schema()},
    }
