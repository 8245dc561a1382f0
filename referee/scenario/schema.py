"""The JSON Schema of scenario files: one source for `referee validate`, `referee schema` and the
editors (each scenario file names it in its yaml-language-server modeline).

Step kinds are told apart by the key that names them (`expect:`, `send:` ...); each has its own
definition under $defs. Library steps (`check:` / `do:`) get one conditional per registered
step, so an editor completes and validates their `args` too.
"""

from __future__ import annotations

from .library import library

SCHEMA_ID = "https://referee.invalid/schemas/scenario.schema.json"

LEVELS = ["MUST", "SHOULD", "MAY"]
DUT_ROLES = ["transferee", "transferor", "target", "pbx", "proxy"]
DUT_KINDS = ["phone", "pbx", "proxy"]
TOPOLOGIES = ["direct", "nat"]
PARTY_KINDS = ["agent", "dut"]
AGENT_OPTIONS = {
    "auto_answer": ({"type": ["integer", "null"]}, "answer new INVITEs with this status by itself (200: with SDP)"),
    "auto_trying": ({"type": "boolean"}, "send 100 Trying to every INVITE (default true)"),
    "auto_ack": ({"type": "boolean"}, "ACK 2xx responses to its INVITEs (default true)"),
    "auto_notify": ({"type": ["integer", "null"]}, "answer in-dialog NOTIFYs with this status (default 200)"),
    "auto_bye": ({"type": ["integer", "null"]}, "answer BYE with this status (default 200)"),
    "auto_options": ({"type": ["integer", "null"]}, "answer OPTIONS with this status (default 200)"),
    "auto_cancel": ({"type": "boolean"}, "answer CANCEL 200 and the INVITE 487 (default true)"),
    "auto_reinvite": ({"type": ["integer", "null"]}, "answer re-INVITE/UPDATE with this status (default 200)"),
    "auto_unknown_dialog": ({"type": "boolean"}, "481 to requests for dialogs it does not have (default true)"),
    "auto_auth": ({"type": "boolean"}, "answer 401/407 challenges with the profile's credentials (default true)"),
    "auto_transferee": ({"type": "boolean"}, "carry out a REFER received in a call as a conformant transferee "
                                             "(202, NOTIFY 100, INVITE the Refer-To target, final NOTIFY)"),
    "user": ({"type": "string"}, "the user part of the agent's URI (default: the party name)"),
    "side": ({"enum": ["lan", "wan"]}, "NAT topology: behind the NAT (lan) or on the public side (wan)"),
    "addr": ({"type": "string"}, "NAT topology: the agent's address on its side"),
    "transport": ({"enum": ["udp", "tcp", "tls"]}, "this agent's transport (default: the profile's)"),
}
NAME = {"type": "string", "pattern": "^[a-z][a-z0-9_]*$"}
SECONDS = {"type": "number", "minimum": 0, "maximum": 600}
STATUS_SPEC = {"type": ["string", "integer"],
               "description": "a status or a range: 200, '2xx', '>=300', '<200', 'final', 'provisional'"}
HEADER_MAP = {"type": "object", "propertyNames": {"pattern": "^[A-Za-z0-9!%*_+`'~.-]+$"},
              "additionalProperties": {"type": ["string", "number", "null"]},
              "description": "header name -> value (null removes the header)"}
HEADER_VALUES = {"oneOf": [
    HEADER_MAP,
    {"type": "array", "items": dict(HEADER_MAP, minProperties=1, maxProperties=1),
     "description": "header fields in order, one {name: value} each: the same name may appear twice"}]}
MATCHER_OPS = {"equals": {"type": ["string", "number"]}, "regex": {"type": "string"},
               "contains": {"type": "string"}, "present": {"type": "boolean"}, "absent": {"type": "boolean"},
               "count": {"type": "integer", "minimum": 0}}
HEADER_MATCHERS = {
    "type": "object", "propertyNames": {"pattern": "^[A-Za-z0-9!%*_+`'~.-]+$"},
    "additionalProperties": {"oneOf": [
        {"type": ["string", "number"], "description": "the header has this exact value"},
        {"type": "null", "description": "the header is absent"},
        {"type": "object", "additionalProperties": False, "minProperties": 1, "properties": MATCHER_OPS},
    ]},
    "description": "header name -> value it must equal, null (absent), or {equals|regex|contains|present|absent|count}",
}
# A table of cases fills `{case.NAME}` from its vars before a step is read, so in a file a
# number, status or flag may be written as that placeholder.
PLACEHOLDER = {"type": "string", "pattern": r"^\{case\.[A-Za-z_][A-Za-z0-9_]*\}$",
               "description": "a value from the case's vars"}
COMMON = {"requirement": {"type": "string", "description": "the requirement this step judges, e.g. 'RFC 3515 §2.4.5 MUST'"},
          "note": {"type": "string", "description": "a remark shown in the trace"}}


def _or_placeholder(schema: dict) -> dict:
    """`schema`, or a {case.NAME} placeholder where the schema takes no string."""
    types = schema.get("type")
    types = [types] if isinstance(types, str) else types or []
    if not types or "string" in types:
        return schema
    return {"anyOf": [schema, PLACEHOLDER], **({"description": schema["description"]} if "description" in schema else {})}


def _step(key: str, key_schema: dict, description: str, props: dict, required: tuple[str, ...] = ()) -> dict:
    properties = {key: key_schema, **props, **COMMON}
    return {"type": "object", "description": description, "additionalProperties": False,
            "properties": properties, "required": [key, *required]}


def step_kinds(placeholders: bool = False) -> dict[str, dict]:
    """Built-in step kind -> its JSON schema (the key that names the kind is required).
    placeholders: also accept {case.NAME} for numbers and flags (the schema of files as written;
    the loader checks steps after the case's values are filled in, with plain types)."""
    kinds = _step_kinds()
    if placeholders:
        for schema in kinds.values():
            schema["properties"] = {k: _or_placeholder(v) for k, v in schema["properties"].items()}
    return kinds


def _step_kinds() -> dict[str, dict]:
    expect_props = {
        "at": {"type": "string", "description": "the agent that receives it"},
        "in": {"type": "string", "description": "only a message in this call"},
        "for": {"type": "string", "description": "a response to this saved request"},
        "headers": HEADER_MATCHERS,
        "sipfrag": STATUS_SPEC, "state": {"enum": ["active", "pending", "terminated"]},
        "timeout": SECONDS, "optional": {"type": "boolean"}, "save": NAME,
        "reply": {"type": "integer", "minimum": 100, "maximum": 699},
        "reply_headers": HEADER_VALUES, "reply_body": {"type": "string"},
        "reply_content_type": {"type": "string"},
        "answer": {"type": "boolean", "description": "answer this INVITE (200 with SDP) and name the call `save`"},
        "if_absent": {"enum": ["fail", "inconclusive"],
                      "description": "in the body, when nothing of this kind came: FAIL (default), or "
                                     "INCONCLUSIVE when the message is a prerequisite judged elsewhere"},
    }
    return {
        "call": _step("call", NAME, "a party sets up a call (INVITE, 2xx, ACK); the DUT as caller is made to dial",
                      {"from": {"type": "string"}, "to": {"type": "string"}, "headers": HEADER_VALUES,
                       "expect": STATUS_SPEC, "timeout": SECONDS, "sdp": {"type": "boolean"},
                       "wait_answer": {"type": "boolean", "description": "false: send the INVITE and go on; "
                                       "later steps judge what becomes of it (default true)"}},
                      ("from", "to")),
        "send": _step("send", {"type": "string", "pattern": "^[A-Z][A-Z0-9-]*$"},
                      "an agent sends a request, in a call (in:) or to a party (to:) or a URI (uri:)",
                      {"from": {"type": "string"}, "in": {"type": "string"}, "to": {"type": "string"},
                       "uri": {"type": "string"}, "headers": HEADER_VALUES, "body": {"type": "string"},
                       "content_type": {"type": "string"}, "save": NAME,
                       "raw": {"type": "string", "description": "crafted bytes instead of a built request"}},
                      ("from",)),
        "expect": _step("expect", {"type": ["string", "integer"], "description": "a method, or a status spec"},
                        "an agent waits for a request or response matching every condition", expect_props, ("at",)),
        "expect_none": _step("expect_none", {"type": ["string", "integer"]},
                             "an agent sees no such message for a while",
                             {"at": {"type": "string"}, "in": {"type": "string"}, "within": SECONDS,
                              "headers": HEADER_MATCHERS}, ("at",)),
        "reply": _step("reply", {"type": "integer", "minimum": 100, "maximum": 699},
                       "an agent answers a saved request (2xx to a REFER accepts it and starts its subscription)",
                       {"at": {"type": "string"}, "to": {"type": "string"}, "headers": HEADER_VALUES,
                        "body": {"type": "string"}, "content_type": {"type": "string"},
                        "save": dict(NAME, description="a 2xx to an INVITE: the name of the call it makes")},
                       ("at", "to")),
        "notify": _step("notify", {"type": "integer", "minimum": 100, "maximum": 699,
                                   "description": "the sipfrag status reported"},
                        "an agent that accepted a REFER sends a NOTIFY of its subscription",
                        {"from": {"type": "string"}, "for": {"type": "string", "description": "the saved REFER"},
                         "final": {"type": "boolean", "description": "terminate the subscription (default: status >= 200)"},
                         "expect": STATUS_SPEC, "timeout": SECONDS, "headers": HEADER_VALUES, "save": NAME},
                        ("from", "for")),
        "collect": _step("collect", {"type": "string", "pattern": "^[A-Z][A-Z0-9-]*$"},
                         "an agent gathers every message of a kind until the final one (a NOTIFY with a final "
                         "status or Subscription-State terminated) and saves the list",
                         {"at": {"type": "string"}, "in": {"type": "string"},
                          "until": {"enum": ["final", "quiet"], "description": "stop at the final NOTIFY (default) "
                                    "or when none comes for `timeout`"},
                          "timeout": SECONDS, "first_timeout": SECONDS, "max": {"type": "integer", "minimum": 1},
                          "save": NAME,
                          "if_absent": {"enum": ["fail", "inconclusive"],
                                        "description": "in the body, when none came at all: FAIL (default), "
                                                       "or INCONCLUSIVE when they are a prerequisite"}},
                         ("at", "save")),
        "any_order": {"type": "object", "additionalProperties": False, "required": ["any_order"],
                      "description": "expectations that may be met in any order",
                      "properties": {"any_order": {"type": "array", "minItems": 2,
                                                   "items": {"$ref": "#/$defs/step_expect"}}, **COMMON}},
        "dut": _step("dut", {"type": "string", "description": "a driver action: dial, answer, reject, hangup, hold, "
                             "transfer, attended_transfer, answer_mode, refer_policy, or event (wait for one)"},
                     "make the DUT act through its driver, or wait for one of its events",
                     {"args": {"type": "object"}, "timeout": SECONDS, "save": NAME}),
        "wait": _step("wait", SECONDS, "a fixed pause (say why in `note`)", {}),
        "set": _step("set", {"type": "string", "description": "the agent party"},
                     "change an agent's automatic behaviours from here on",
                     {"options": {"type": "object", "additionalProperties": False,
                                  "properties": {k: dict(v[0], description=v[1]) for k, v in AGENT_OPTIONS.items()
                                                 if k not in ("side", "addr", "transport")}}}, ("options",)),
        "check": _step("check", {"type": "string", "description": "a library check (referee steps)"},
                       "a named check of the step library, with its arguments", {"args": {"type": "object"}}),
        "do": _step("do", {"type": "string", "description": "a library action (referee steps)"},
                    "a named action of the step library, with its arguments", {"args": {"type": "object"}}),
    }


def _library_conditions() -> list[dict]:
    """One if/then per library step: its args follow its declaration."""
    out = []
    for entry in library().values():
        out.append({"if": {"properties": {entry.kind: {"const": entry.name}}, "required": [entry.kind]},
                    "then": {"properties": {"args": entry.args_schema()},
                             **({"required": ["args"]} if any(p.required for p in entry.params.values()) else {})}})
    return out


def scenario_schema() -> dict:
    kinds = step_kinds(placeholders=True)
    defs = {f"step_{k}": v for k, v in kinds.items()}
    library_steps = sorted(library())
    defs["step_check"]["properties"]["check"]["enum"] = [n for n in library_steps if library()[n].kind == "check"]
    defs["step_do"]["properties"]["do"]["enum"] = [n for n in library_steps if library()[n].kind == "do"]
    defs["step"] = {"oneOf": [{"$ref": f"#/$defs/step_{k}"} for k in kinds], "allOf": _library_conditions()}
    defs["steps"] = {"type": "array", "items": {"$ref": "#/$defs/step"}}
    defs["party"] = {"oneOf": [
        {"enum": PARTY_KINDS},
        {"type": "object", "additionalProperties": False,
         "properties": {"kind": {"enum": PARTY_KINDS},
                        **{k: dict(v[0], description=v[1]) for k, v in AGENT_OPTIONS.items()}}}]}
    meta = {
        "id": {"type": "string", "pattern": r"^[A-Z][A-Z0-9]*(-[A-Z0-9]+)*-\d{3}$",
               "description": "the test purpose id, e.g. TE-BLIND-001"},
        "title": {"type": "string"},
        "rfc": {"type": ["string", "integer"], "pattern": r"^RFC ?\d{3,5}$", "description": "e.g. RFC 3515"},
        "section": {"type": ["string", "number"]},
        "level": {"enum": LEVELS},
        "requirement": {"type": "string", "description": "the requirement in words: what the DUT must do"},
        "needs": {"type": "array", "items": {"type": "string"},
                  "description": "roles and capabilities the DUT profile must declare"},
        "markers": {"type": "array", "items": {"type": "string"}},
        "description": {"type": "string"},
    }
    phases = {"preamble": {"$ref": "#/$defs/steps", "description": "bring the parties to the state under test"},
              "body": {"$ref": "#/$defs/steps", "minItems": 1,
                       "description": "the behaviour the requirement is about (only the body can FAIL)"},
              "postamble": {"$ref": "#/$defs/steps", "description": "clean up (never changes the verdict)"}}
    defs["case"] = {"type": "object", "additionalProperties": False, "required": ["id", "title"],
                    "description": "one test purpose of a table of cases: its own id, requirement and verdict",
                    "properties": {**meta, **phases,
                                   "parties": {"type": "object", "minProperties": 1, "propertyNames": NAME,
                                               "additionalProperties": {"$ref": "#/$defs/party"},
                                               "description": "this case's parties (instead of the file's)"},
                                   "judge": {"$ref": "#/$defs/steps",
                                             "description": "steps appended to the shared body for this case: "
                                                            "what this test purpose judges"},
                                   "vars": {"type": "object",
                                            "description": "values for {case.NAME} in the steps"}}}
    top = {
        **meta,
        "dut": {"enum": DUT_ROLES, "description": "the role the DUT plays"},
        "dut_kinds": {"type": "array", "items": {"enum": DUT_KINDS}},
        "topology": {"enum": TOPOLOGIES},
        "nat": {"type": "object", "additionalProperties": False,
                "properties": {"alg": {"type": "array", "items": {"enum": ["on", "off"]},
                                       "description": "run with the kernel SIP ALG on and/or off (one test each)"},
                               "proxy": {"type": "boolean", "description": "Kamailio in front of the DUT"}}},
        "parties": {"type": "object", "minProperties": 1, "propertyNames": NAME,
                    "additionalProperties": {"$ref": "#/$defs/party"}},
        **phases,
        "cases": {"type": "array", "minItems": 1, "items": {"$ref": "#/$defs/case"}},
    }
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": SCHEMA_ID,
        "title": "referee scenario (a SIP REFER test purpose, or a table of them)",
        "type": "object", "additionalProperties": False, "properties": top,
        "required": ["dut", "parties"],
        "oneOf": [{"required": ["id", "title", "rfc", "section", "level", "body"], "not": {"required": ["cases"]}},
                  {"required": ["cases"]}],
        "$defs": defs,
    }
