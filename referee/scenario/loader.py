"""Load and validate scenario files. Every problem becomes one ScenarioError naming file:line.

    scenarios/x.yaml:14: step 3: unknown key 'hedaers' in expect step (did you mean 'headers'?)
"""

from __future__ import annotations

import difflib
import pathlib
import re

from referee.agent.matchers import HeaderMatcher, is_valid_kind, status_matches

from .model import (DUT_ROLES, LEVELS, TOPOLOGIES, AnyOrderStep, CallStep, CheckStep, DutStep,
                    ExpectNoneStep, ExpectStep, Party, ReplyStep, Requirement, Scenario, SendStep, Step,
                    WaitStep)
from .yamlsrc import LDict, LList, YamlError, line_of, load_yaml

TOP_KEYS = {"id", "title", "rfc", "section", "level", "requirement", "dut", "dut_kinds", "needs", "topology",
            "markers", "parties", "preamble", "body", "postamble", "description"}
REQUIRED_TOP = ("id", "title", "rfc", "section", "level", "dut", "parties", "body")
PHASE_KEYS = ("preamble", "body", "postamble")
COMMON_STEP_KEYS = {"requirement", "note"}
STEP_KEYS = {
    "call": {"call", "from", "to", "headers", "expect", "timeout", "sdp"},
    "send": {"send", "from", "in", "to", "uri", "headers", "body", "content_type", "save", "raw"},
    "expect": {"expect", "at", "in", "for", "headers", "sipfrag", "state", "timeout", "optional", "save",
               "reply", "reply_headers", "reply_body", "reply_content_type", "answer", "if_absent"},
    "expect_none": {"expect_none", "at", "in", "within", "headers"},
    "reply": {"reply", "at", "to", "headers", "body", "content_type"},
    "any_order": {"any_order"},
    "dut": {"dut", "args", "timeout", "save"},
    "wait": {"wait"},
    "check": {"check", "up"},
}
DUT_ACTIONS = {"dial", "answer", "reject", "hangup", "hold", "transfer", "attended_transfer", "event",
               "answer_mode", "refer_policy"}
PARTY_KINDS = ("agent", "dut")
AGENT_OPTIONS = {"auto_answer", "auto_trying", "auto_ack", "auto_notify", "auto_bye", "auto_options",
                 "auto_cancel", "auto_reinvite", "auto_unknown_dialog", "user"}
VARIABLE_RE = re.compile(r"\{([A-Za-z_][\w-]*)\.([\w-]+)\}")
PARTY_ATTRS = {"uri", "aor", "host", "port", "user", "hostport", "contact"}
CALL_ATTRS = {"replaces", "replaces_escaped", "call_id", "local_tag", "remote_tag", "remote_target"}


class ScenarioError(ValueError):
    """A broken scenario file: `path:line: message`."""

    def __init__(self, path: pathlib.Path | str, line: int, message: str) -> None:
        self.path, self.line, self.message = str(path), line, message
        super().__init__(f"{path}:{line}: {message}" if line else f"{path}: {message}")


def load_scenario(path: pathlib.Path | str, base: pathlib.Path | None = None) -> Scenario:
    path = pathlib.Path(path)
    shown = _display(path, base)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ScenarioError(shown, 0, "file not found") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ScenarioError(shown, 0, f"cannot read: {exc}") from None
    try:
        data = load_yaml(text)
    except YamlError as exc:
        raise ScenarioError(shown, exc.line, exc.message) from None
    return _Validator(path, shown).scenario(data)


def load_all(directory: pathlib.Path | str) -> tuple[list[Scenario], list[ScenarioError]]:
    """Every *.yaml under `directory` (not sipp/), sorted; broken files come back as errors."""
    directory = pathlib.Path(directory)
    scenarios, errors = [], []
    for path in sorted(directory.rglob("*.yaml")):
        if "sipp" in path.relative_to(directory).parts:
            continue
        try:
            scenarios.append(load_scenario(path, directory.parent))
        except ScenarioError as exc:
            errors.append(exc)
    seen: dict[str, Scenario] = {}
    for sc in scenarios:
        if sc.id in seen:
            errors.append(ScenarioError(_display(sc.file, directory.parent), 1,
                                        f"duplicate test purpose id {sc.id!r} (also in {seen[sc.id].file.name})"))
        seen[sc.id] = sc
    return scenarios, errors


def _display(path: pathlib.Path, base: pathlib.Path | None) -> str:
    try:
        return str(path.resolve().relative_to((base or pathlib.Path.cwd()).resolve()))
    except ValueError:
        return str(path)


def _suggest(word: str, choices) -> str:
    close = difflib.get_close_matches(str(word), sorted(choices), n=1)
    return f" (did you mean {close[0]!r}?)" if close else f" (expected one of: {', '.join(sorted(choices))})"


class _Validator:
    def __init__(self, path: pathlib.Path, shown: str) -> None:
        self.path = path
        self.shown = shown
        self.parties: dict[str, Party] = {}
        self.calls: set[str] = set()
        self.saved: set[str] = set()

    def fail(self, line: int, message: str) -> ScenarioError:
        return ScenarioError(self.shown, line, message)

    # -- top level ---------------------------------------------------------------------------
    def scenario(self, data) -> Scenario:
        if not isinstance(data, LDict):
            raise self.fail(line_of(data, default=1), "a scenario file must be a mapping (id:, title:, steps: ...)")
        if "steps" in data:
            raise self.fail(line_of(data, "steps"), "'steps' is split into 'preamble' (bring the parties to the "
                                                    "state under test), 'body' (the behaviour the requirement is "
                                                    "about) and 'postamble' (clean up): only the body can FAIL")
        for key in data:
            if key not in TOP_KEYS:
                raise self.fail(line_of(data, key), f"unknown top-level key {key!r}{_suggest(key, TOP_KEYS)}")
        for key in REQUIRED_TOP:
            if key not in data:
                raise self.fail(data.line, f"missing required key {key!r}")
        sid = self.string(data, "id")
        if not re.fullmatch(r"[A-Z][A-Z0-9]*(-[A-Z0-9]+)*-\d{3}", sid):
            raise self.fail(line_of(data, "id"), f"id {sid!r} is not a test purpose id like 'TE-BLIND-001'")
        level = self.string(data, "level").upper()
        if level not in LEVELS:
            raise self.fail(line_of(data, "level"), f"level {level!r} must be one of {', '.join(LEVELS)}")
        rfc = self.string(data, "rfc")
        if not re.fullmatch(r"RFC ?\d{3,5}", rfc):
            raise self.fail(line_of(data, "rfc"), f"rfc {rfc!r} must look like 'RFC 3515'")
        rfc = "RFC " + rfc[3:].strip()
        role = self.string(data, "dut")
        if role not in DUT_ROLES:
            raise self.fail(line_of(data, "dut"), f"dut role {role!r}{_suggest(role, DUT_ROLES)}")
        topology = self.string(data, "topology", "direct")
        if topology not in TOPOLOGIES:
            raise self.fail(line_of(data, "topology"), f"topology {topology!r} must be one of {', '.join(TOPOLOGIES)}")
        requirement = Requirement(rfc, str(data["section"]), level, self.string(data, "requirement", ""))
        self.parties = self.parse_parties(data["parties"], line_of(data, "parties"))
        default_kinds = ["pbx"] if role == "pbx" else ["proxy"] if role == "proxy" else ["phone"]
        steps: list[Step] = []
        for phase in PHASE_KEYS:
            if phase not in data:
                continue
            node = data[phase]
            if not isinstance(node, LList) or (phase == "body" and not node):
                raise self.fail(line_of(data, phase), f"{phase} must be a {'non-empty ' if phase == 'body' else ''}"
                                                      f"list of steps")
            for child in node:
                step = self.step(child, str(len(steps) + 1))
                step.phase = phase
                for sub in getattr(step, "steps", []):
                    sub.phase = phase
                steps.append(step)
        return Scenario(
            id=sid, title=self.string(data, "title"), file=self.path, requirement=requirement, dut_role=role,
            parties=self.parties, steps=steps, needs=self.string_list(data, "needs"),
            dut_kinds=self.string_list(data, "dut_kinds") or default_kinds, topology=topology,
            markers=self.string_list(data, "markers"), description=self.string(data, "description", ""))

    def string(self, node: LDict, key: str, default: str | None = None) -> str:
        if key not in node:
            if default is None:
                raise self.fail(node.line, f"missing required key {key!r}")
            return default
        value = node[key]
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            value = str(value)
        if not isinstance(value, str):
            raise self.fail(line_of(node, key), f"{key} must be a string, got {type(value).__name__}")
        return value.strip()

    def string_list(self, node: LDict, key: str) -> list[str]:
        value = node.get(key, [])
        if isinstance(value, str):
            value = [value]
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise self.fail(line_of(node, key), f"{key} must be a list of strings")
        return list(value)

    def parse_parties(self, node, line: int) -> dict[str, Party]:
        if not isinstance(node, LDict) or not node:
            raise self.fail(line, "parties must be a mapping of role name to 'agent' or 'dut'")
        parties: dict[str, Party] = {}
        for name, spec in node.items():
            kline = line_of(node, name)
            if not re.fullmatch(r"[a-z][a-z0-9_]*", str(name)):
                raise self.fail(kline, f"party name {name!r} must be lowercase letters, digits, _")
            options: dict = {}
            if isinstance(spec, LDict):
                options = dict(spec)
                kind = options.pop("kind", "agent")
                for opt in options:
                    if opt not in AGENT_OPTIONS:
                        raise self.fail(line_of(spec, opt), f"party {name}: unknown option {opt!r}"
                                                            f"{_suggest(opt, AGENT_OPTIONS)}")
            else:
                kind = spec
            if kind not in PARTY_KINDS:
                raise self.fail(kline, f"party {name}: kind {kind!r} must be 'agent' or 'dut'")
            parties[name] = Party(name, kind, options)
        if sum(p.kind == "dut" for p in parties.values()) > 1:
            raise self.fail(line, "only one party can be the dut")
        return parties

    # -- steps ---------------------------------------------------------------------------------
    def step(self, node, index: str, in_group: bool = False) -> Step:
        prefix = f"step {index}"
        if not isinstance(node, LDict):
            raise self.fail(line_of(node, default=0), f"{prefix}: a step must be a mapping like 'expect: NOTIFY'")
        kinds = [k for k in STEP_KEYS if k in node]
        if len(kinds) > 1:
            # `expect:` inside a call step and `reply:` inside an expect step are keys, not kinds
            kinds = [k for k in kinds if not any(k in STEP_KEYS[o] for o in kinds if o != k)]
        if len(kinds) != 1:
            if not kinds:
                first = next(iter(node), "")
                raise self.fail(node.line, f"{prefix}: unknown step kind {first!r}{_suggest(first, STEP_KEYS)}")
            raise self.fail(node.line, f"{prefix}: one step, one kind (found {', '.join(kinds)})")
        kind = kinds[0]
        allowed = STEP_KEYS[kind] | COMMON_STEP_KEYS
        for key in node:
            if key not in allowed:
                what = "matcher" if key not in STEP_KEYS and kind.startswith("expect") else "key"
                raise self.fail(line_of(node, key), f"{prefix}: unknown {what} {key!r} in {kind} step"
                                                    f"{_suggest(key, allowed)}")
        if in_group and kind != "expect":
            raise self.fail(node.line, f"{prefix}: any_order groups hold only expect steps, not {kind}")
        common = dict(line=node.line, index=index, requirement=self.opt_str(node, "requirement", prefix),
                      note=self.opt_str(node, "note", prefix) or "")
        return getattr(self, f"step_{kind}")(node, prefix, common)

    def opt_str(self, node: LDict, key: str, prefix: str) -> str | None:
        if key not in node or node[key] is None:
            return None
        value = node[key]
        if isinstance(value, bool) or not isinstance(value, (str, int, float)):
            raise self.fail(line_of(node, key), f"{prefix}: {key} must be a string")
        self.check_variables(str(value), line_of(node, key), prefix)
        return str(value)

    def choice(self, node: LDict, key: str, prefix: str, choices: tuple[str, ...], default: str) -> str:
        value = node.get(key, default)
        if value not in choices:
            raise self.fail(line_of(node, key), f"{prefix}: {key} must be one of {', '.join(choices)}, got {value!r}")
        return value

    def number(self, node: LDict, key: str, prefix: str, default: float) -> float:
        value = node.get(key, default)
        if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0 or value > 600:
            raise self.fail(line_of(node, key), f"{prefix}: {key} must be a number of seconds (0..600), got {value!r}")
        return float(value)

    def party(self, node: LDict, key: str, prefix: str, agent_only: bool = False, required: bool = True) -> str | None:
        if key not in node:
            if required:
                raise self.fail(node.line, f"{prefix}: missing {key!r} (one of: {', '.join(self.parties)})")
            return None
        name = node[key]
        if name not in self.parties:
            raise self.fail(line_of(node, key), f"{prefix}: unknown party {name!r}{_suggest(name, self.parties)}")
        if agent_only and self.parties[name].kind == "dut":
            raise self.fail(line_of(node, key), f"{prefix}: {key}: {name} is the DUT; only the suite's agents "
                                                f"can {('observe messages' if key == 'at' else 'do that')} — "
                                                "use a 'dut:' step to drive the DUT")
        return name

    def call_ref(self, node: LDict, key: str, prefix: str) -> str | None:
        if key not in node:
            return None
        name = node[key]
        if name not in self.calls:
            known = ", ".join(sorted(self.calls)) or "none yet"
            raise self.fail(line_of(node, key), f"{prefix}: call {name!r} is not defined before this step "
                                                f"(defined: {known})")
        return name

    def saved_ref(self, node: LDict, key: str, prefix: str) -> str | None:
        if key not in node:
            return None
        name = node[key]
        if name not in self.saved:
            known = ", ".join(sorted(self.saved)) or "none yet"
            raise self.fail(line_of(node, key), f"{prefix}: {key}: {name!r} is not saved by an earlier step "
                                                f"(saved: {known})")
        return name

    def save_name(self, node: LDict, key: str, prefix: str) -> str | None:
        if key not in node:
            return None
        name = node[key]
        if not isinstance(name, str) or not re.fullmatch(r"[a-z][a-z0-9_]*", name):
            raise self.fail(line_of(node, key), f"{prefix}: {key} name {name!r} must be lowercase letters, digits, _")
        if name in self.parties:
            raise self.fail(line_of(node, key), f"{prefix}: {key} name {name!r} clashes with a party")
        return name

    def headers(self, node: LDict, key: str, prefix: str, matchers: bool) -> dict:
        value = node.get(key, {})
        if value is None:
            return {}
        if not isinstance(value, dict):
            raise self.fail(line_of(node, key), f"{prefix}: {key} must be a mapping of header name to value")
        for name, cond in value.items():
            hline = line_of(value, name, line_of(node, key))
            if not re.fullmatch(r"[A-Za-z0-9!%*_+`'~.-]+", str(name)):
                raise self.fail(hline, f"{prefix}: bad header name {name!r}")
            if matchers and isinstance(cond, dict):
                for op, arg in cond.items():
                    if op not in HeaderMatcher.OPS:
                        raise self.fail(line_of(cond, op, hline), f"{prefix}: unknown matcher {op!r} for header "
                                                                  f"{name}{_suggest(op, HeaderMatcher.OPS)}")
                    if op == "regex":
                        try:
                            re.compile(str(arg))
                        except re.error as exc:
                            raise self.fail(line_of(cond, op, hline), f"{prefix}: bad regex for {name}: {exc}") from None
                    if isinstance(arg, str):
                        self.check_variables(arg, hline, prefix)
            elif cond is not None:
                if isinstance(cond, (dict, list)):
                    raise self.fail(hline, f"{prefix}: header {name} must have a text value")
                if not matchers and isinstance(cond, bool):
                    raise self.fail(hline, f"{prefix}: header {name}: write the value as text, e.g. 'true'")
                self.check_variables(str(cond), hline, prefix)
        return dict(value)

    def status_spec(self, value, line: int, prefix: str, what: str = "status") -> str:
        try:
            status_matches(str(value), 200)
        except ValueError:
            raise self.fail(line, f"{prefix}: bad {what} {value!r}: expected e.g. 200, '1xx', '>=300', 'final'") from None
        return str(value)

    def check_variables(self, text: str, line: int, prefix: str) -> None:
        for root, attr in VARIABLE_RE.findall(text):
            if root in self.parties:
                if attr not in PARTY_ATTRS:
                    raise self.fail(line, f"{prefix}: unknown attribute {{{root}.{attr}}}{_suggest(attr, PARTY_ATTRS)}")
            elif root in self.calls:
                if attr not in CALL_ATTRS:
                    raise self.fail(line, f"{prefix}: unknown attribute {{{root}.{attr}}}{_suggest(attr, CALL_ATTRS)}")
            elif root not in self.saved:
                names = list(self.parties) + sorted(self.calls) + sorted(self.saved)
                raise self.fail(line, f"{prefix}: unknown variable {{{root}.{attr}}}: {root!r} is not a party, "
                                      f"call or saved message{_suggest(root, names)}")

    # -- each step kind --------------------------------------------------------------------
    def step_call(self, node, prefix, common) -> CallStep:
        name = self.save_name(node, "call", prefix)
        if name is None:
            raise self.fail(node.line, f"{prefix}: call needs a name (call: call1)")
        caller = self.party(node, "from", prefix)
        callee = self.party(node, "to", prefix)
        if caller == callee:
            raise self.fail(node.line, f"{prefix}: a party cannot call itself")
        step = CallStep(**common, name=name, caller=caller, callee=callee,
                        headers=self.headers(node, "headers", prefix, matchers=False),
                        expect=self.status_spec(node.get("expect", "2xx"), line_of(node, "expect"), prefix),
                        timeout=self.number(node, "timeout", prefix, 10.0), sdp=bool(node.get("sdp", True)))
        self.calls.add(name)
        return step

    def step_send(self, node, prefix, common) -> SendStep:
        sender = self.party(node, "from", prefix, agent_only=True)
        raw = self.opt_str(node, "raw", prefix)
        method = node.get("send")
        if raw is None and (not isinstance(method, str) or not re.fullmatch(r"[A-Z][A-Z0-9-]*", method)):
            raise self.fail(line_of(node, "send"), f"{prefix}: send needs a method in capitals, got {method!r}")
        call = self.call_ref(node, "in", prefix)
        to = self.party(node, "to", prefix, required=False)
        uri = self.opt_str(node, "uri", prefix)
        if call is None and to is None and uri is None:
            raise self.fail(node.line, f"{prefix}: send needs 'in: <call>' (in dialog) or 'to: <party>'")
        step = SendStep(**common, method=method or "", sender=sender, call=call, to=to, uri=uri,
                        headers=self.headers(node, "headers", prefix, matchers=False),
                        body=self.opt_str(node, "body", prefix), content_type=self.opt_str(node, "content_type", prefix),
                        save=self.save_name(node, "save", prefix), raw=raw)
        if step.save:
            self.saved.add(step.save)
        return step

    def step_expect(self, node, prefix, common) -> ExpectStep:
        what = node.get("expect")
        if what is None or not is_valid_kind(str(what)):
            raise self.fail(line_of(node, "expect"), f"{prefix}: expect needs a method (NOTIFY) or a status "
                                                     f"(202, '2xx', '>=300'), got {what!r}")
        at = self.party(node, "at", prefix, agent_only=True)
        sipfrag = node.get("sipfrag")
        if sipfrag is not None:
            sipfrag = self.status_spec(sipfrag, line_of(node, "sipfrag"), prefix, "sipfrag status")
        state = node.get("state")
        if state is not None and state not in ("active", "pending", "terminated"):
            raise self.fail(line_of(node, "state"), f"{prefix}: state {state!r} must be active, pending or terminated")
        reply = node.get("reply")
        if reply is not None and (isinstance(reply, bool) or not isinstance(reply, int) or not 100 <= reply <= 699):
            raise self.fail(line_of(node, "reply"), f"{prefix}: reply must be a status code 100..699, got {reply!r}")
        step = ExpectStep(**common, what=str(what), at=at, call=self.call_ref(node, "in", prefix),
                          response_to=self.saved_ref(node, "for", prefix),
                          headers=self.headers(node, "headers", prefix, matchers=True), sipfrag=sipfrag,
                          state=state, timeout=self.number(node, "timeout", prefix, 5.0),
                          optional=bool(node.get("optional", False)), save=self.save_name(node, "save", prefix),
                          reply=reply, reply_headers=self.headers(node, "reply_headers", prefix, matchers=False),
                          reply_body=self.opt_str(node, "reply_body", prefix),
                          reply_content_type=self.opt_str(node, "reply_content_type", prefix),
                          answer=bool(node.get("answer", False)),
                          if_absent=self.choice(node, "if_absent", prefix, ("fail", "inconclusive"), "fail"))
        if step.answer and str(what).upper() != "INVITE":
            raise self.fail(line_of(node, "answer"), f"{prefix}: answer: true only applies to expect: INVITE")
        if step.save:
            (self.calls if step.answer else self.saved).add(step.save)
            if step.answer:
                self.saved.add(step.save)
        return step

    def step_expect_none(self, node, prefix, common) -> ExpectNoneStep:
        what = node.get("expect_none")
        if what is None or not is_valid_kind(str(what)):
            raise self.fail(line_of(node, "expect_none"), f"{prefix}: expect_none needs a method or status")
        return ExpectNoneStep(**common, what=str(what), at=self.party(node, "at", prefix, agent_only=True),
                              call=self.call_ref(node, "in", prefix),
                              within=self.number(node, "within", prefix, 2.0),
                              headers=self.headers(node, "headers", prefix, matchers=True))

    def step_reply(self, node, prefix, common) -> ReplyStep:
        status = node.get("reply")
        if isinstance(status, bool) or not isinstance(status, int) or not 100 <= status <= 699:
            raise self.fail(line_of(node, "reply"), f"{prefix}: reply must be a status code 100..699, got {status!r}")
        to = self.saved_ref(node, "to", prefix)
        if to is None:
            raise self.fail(node.line, f"{prefix}: reply needs 'to: <saved request>'")
        return ReplyStep(**common, status=status, at=self.party(node, "at", prefix, agent_only=True), to=to,
                         headers=self.headers(node, "headers", prefix, matchers=False),
                         body=self.opt_str(node, "body", prefix), content_type=self.opt_str(node, "content_type", prefix))

    def step_any_order(self, node, prefix, common) -> AnyOrderStep:
        group = node["any_order"]
        if not isinstance(group, LList) or len(group) < 2:
            raise self.fail(line_of(node, "any_order"), f"{prefix}: any_order needs a list of at least two expect steps")
        steps = [self.step(child, f"{common['index']}.{i + 1}", in_group=True) for i, child in enumerate(group)]
        return AnyOrderStep(**common, steps=steps)

    def step_dut(self, node, prefix, common) -> DutStep:
        action = node.get("dut")
        if action not in DUT_ACTIONS:
            raise self.fail(line_of(node, "dut"), f"{prefix}: unknown DUT action {action!r}{_suggest(action, DUT_ACTIONS)}")
        args = node.get("args", {}) or {}
        if not isinstance(args, dict):
            raise self.fail(line_of(node, "args"), f"{prefix}: args must be a mapping")
        for value in args.values():
            if isinstance(value, str):
                self.check_variables(value, line_of(node, "args"), prefix)
        step = DutStep(**common, action=action, args=dict(args), timeout=self.number(node, "timeout", prefix, 10.0),
                       save=self.save_name(node, "save", prefix))
        if step.save:
            self.saved.add(step.save)
        return step

    def step_wait(self, node, prefix, common) -> WaitStep:
        return WaitStep(**common, seconds=self.number(node, "wait", prefix, 0.0))

    def step_check(self, node, prefix, common) -> CheckStep:
        call = self.call_ref(node, "check", prefix)
        return CheckStep(**common, call=call, up=bool(node.get("up", True)))
