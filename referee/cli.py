"""The `referee` command: run the suites, list and validate test purposes and profiles.

    referee run [--dut duts/x.toml] [--report-dir DIR] [-k EXPR] [-m EXPR] [pytest args...]
    referee list [--dut duts/x.toml]
    referee validate [FILES...]
    referee run --shard K/N [--durations FILE] ...     (one part of the selection, e.g. one CI job)
    referee merge DIR... [-o OUT]                      (one report from the parts' report directories)
    referee matrix [--shard K/N] [PROFILES...]
    referee ladder capture.pcap -o ladder.svg

`run` is a thin wrapper on pytest over suites/: exit 0 when every selected test passed, 1 when
any failed, >= 2 for usage, profile or internal errors.
"""

from __future__ import annotations

import argparse
import pathlib
import sys

REPO = pathlib.Path(__file__).resolve().parents[1]
SUITES = REPO / "suites"
SCENARIOS = REPO / "scenarios"
DUTS = REPO / "duts"


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["ladder"]:
        from referee.report.cli_ladder import main as ladder_main
        return ladder_main(argv[1:])
    parser = argparse.ArgumentParser(prog="referee", description="SIP REFER conformance and interop test suite")
    parser.add_argument("--version", action="version", version=f"referee {_version()}")
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="run the suites against a DUT (extra args go to pytest)")
    run.add_argument("--dut", help="DUT profile (default: the built-in reference phone)")
    run.add_argument("--report-dir", default="reports", help="reports directory (default: reports/)")
    run.add_argument("-k", dest="keyword", help="only tests matching this expression (pytest -k)")
    run.add_argument("-m", dest="markers", help="marker expression, e.g. 'rfc3891 and must' (default: not load)")
    run.add_argument("--shard", metavar="K/N", help="run only part K of N of the selected tests "
                                                    "(balanced by recorded durations; merge with `referee merge`)")
    run.add_argument("--durations", metavar="FILE", help="test durations that balance --shard (JSON test id -> "
                                                         "seconds; default: referee/data/durations.json; every run "
                                                         "updates <report-dir>/durations.json)")
    run.add_argument("--scenarios", action="append", default=[], metavar="PATH",
                     help="run only the scenario files of PATH (a file or a directory; repeatable), e.g. your own")
    run.add_argument("--workers", type=int, metavar="N",
                     help="test purposes at a time (default: what the DUT allows, see default_workers; 1: one "
                          "at a time)")
    lst = sub.add_parser("list", help="list test purposes (and which apply to a DUT profile)")
    lst.add_argument("--dut", help="DUT profile to check applicability against")
    mat = sub.add_parser("matrix", help="run the suites over several DUT profiles; write the interop matrix")
    mat.add_argument("profiles", nargs="*", help="profiles (default: every phone/proxy profile in duts/ "
                                                "that the suite can launch itself)")
    mat.add_argument("--out", default=str(REPO / "docs"), help="where interop-matrix.md/.xml go (default: docs/)")
    mat.add_argument("--report-dir", default="reports/matrix", help="per-DUT reports (default: reports/matrix/)")
    mat.add_argument("--shard", metavar="K/N", help="run only part K of N of the profiles (merge the parts' "
                                                    "report directories with `referee merge`)")
    mrg = sub.add_parser("merge", help="one report directory (and, for several DUTs, the interop matrix) "
                                       "from the report directories of shards or of runs against several DUTs")
    mrg.add_argument("parts", nargs="+", metavar="DIR", help="report directories of the parts (or directories "
                                                              "holding them, e.g. reports/matrix)")
    mrg.add_argument("-o", "--out", default="reports/merged", help="merged report directory (default: reports/merged/)")
    val = sub.add_parser("validate", help="check scenario and profile files")
    val.add_argument("files", nargs="*", help="files to check (default: scenarios/ and duts/)")
    sub.add_parser("ladder", help="draw the SIP ladder of a pcap: referee ladder capture.pcap -o ladder.svg|html")
    sch = sub.add_parser("schema", help="print the JSON Schema of scenario files or DUT profiles")
    sch.add_argument("which", nargs="?", choices=("scenario", "profile"), default="scenario")
    sch.add_argument("--write", metavar="DIR", help="write scenario.schema.json and profile.schema.json into DIR")
    sub.add_parser("steps", help="list the named checks and actions scenario files can call")
    args, extra = parser.parse_known_args(argv)
    if args.command not in ("run", "matrix") and extra:
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    if args.command == "run":
        return cmd_run(args, extra)
    if args.command == "list":
        return cmd_list(args)
    if args.command == "matrix":
        return cmd_matrix(args, extra)
    if args.command == "merge":
        _checkout_importable()
        from referee.merge import merge
        return merge(args.parts, pathlib.Path(args.out))
    if args.command == "schema":
        return cmd_schema(args)
    if args.command == "steps":
        return cmd_steps()
    return cmd_validate(args)


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version
    try:
        return version("referee")
    except PackageNotFoundError:
        return "(not installed)"


def cmd_run(args, extra: list[str]) -> int:
    import pytest
    report_dir = pathlib.Path(args.report_dir).resolve()
    report_dir.mkdir(parents=True, exist_ok=True)
    for name in ("junit.xml", "certification.xml", "results.json", "index.html"):
        (report_dir / name).unlink(missing_ok=True)      # never leave an older run's verdicts behind
    pytest_args = [str(SUITES), "--rootdir", str(REPO), "-c", str(REPO / "pytest.ini"),
                   f"--report-dir={report_dir}", f"--junitxml={report_dir / 'junit.xml'}", "-rfEs"]
    if args.dut:
        pytest_args.append(f"--dut={pathlib.Path(args.dut).resolve()}")
    if args.keyword:
        pytest_args += ["-k", args.keyword]
    if args.scenarios:
        # only the scenario files given (the Python flows of suites/ are left out)
        pytest_args[0] = str(SUITES / "test_scenarios.py")
        pytest_args += [f"--scenarios={pathlib.Path(p).resolve()}" for p in args.scenarios]
    pytest_args += ["-m", args.markers or "not load"]
    _checkout_importable()
    pytest_args += ["-p", "fixtures.sharding"]         # --shard, and <report-dir>/durations.json
    if args.shard:
        pytest_args.append(f"--shard={args.shard}")
    if args.durations:
        if not pathlib.Path(args.durations).is_file():
            print(f"error: --durations {args.durations}: no such file", file=sys.stderr)
            return 2
        pytest_args.append(f"--shard-durations={pathlib.Path(args.durations).resolve()}")
    workers = default_workers(args.dut, extra, args.markers) if args.workers is None else args.workers
    if workers > 1:
        # test purposes side by side, handed out longest first (fixtures/sharding.py): the run
        # ends close to its longest test
        pytest_args += ["-n", str(workers)]
    if not any("hypothesispytest" in a for a in extra):
        pytest_args += ["-p", "no:hypothesispytest"]    # referee's own tests use it, the suites do not
    pytest_args += extra
    status = _RefereeStatus()
    code = int(pytest.main(pytest_args, plugins=[status]))
    if (report_dir / "index.html").exists():
        print(f"\nreports: {report_dir / 'index.html'} (junit.xml, certification.xml, results.json; "
              f"per test: trace, pcap, ladder)")
    elif (report_dir / "junit.xml").exists():
        print(f"\nreports: {report_dir / 'junit.xml'}")
    if (report_dir / "load-junit.xml").exists():
        print(f"load results: {report_dir / 'load-junit.xml'}")
    if status.exit is not None:
        return status.exit
    # pytest's own statuses: interrupted and usage errors mean the run could not start (2), an
    # internal error is an ERROR of the suite (3), no test collected means nothing judged (5)
    return {0: 0, 1: 1, 2: 2, 3: 3, 4: 2, 5: 5}.get(code, 3)


CONCURRENT_TESTS = 4      # test purposes at a time against DUTs referee launches itself (mostly waiting)


def default_workers(dut: str | None, extra: list[str], markers: str | None = None) -> int:
    """How many test purposes `referee run` runs at once unless told (--workers, -n, -p no:xdist):
    against a DUT referee launches per test, each test has its own DUT instance, agents and
    capture window, so they run side by side. A device the tests share (an external DUT, or
    one an HTTP API or a command drives) takes one test at a time unless its profile says how
    many it takes (`parallel`), and a PBX always (every test uses the same users); so does a DUT
    on a fixed port or with users on fixed ports, and a DUT an operator drives. `parallel` also
    caps the tests against launched DUTs. Load steps (`-m load`) run one at a time: each
    measures the DUT alone (and they write one load-junit.xml)."""
    if "load" in (markers or "").replace("not load", ""):
        return 0
    if any(a in ("-n", "--numprocesses") or a.startswith(("-n", "--numprocesses=")) for a in extra) \
            or "no:xdist" in extra:
        return 0
    from referee.dut import BUILTIN_PROFILE, ProfileError, load_profile
    from referee.dut.session import launches_instances, poolable
    try:
        profile = load_profile(dut or BUILTIN_PROFILE)
    except ProfileError:
        return 0                       # the run reports the profile error itself
    parallel = getattr(profile, "parallel", None)
    if profile.driver == "operator":
        return 0
    if not launches_instances(profile):
        return 0 if profile.kind == "pbx" else int(parallel or 1)
    if not poolable(profile):          # one instance at a time: its port, or its users' ports, are fixed
        return 0
    return min(CONCURRENT_TESTS, parallel or CONCURRENT_TESTS)


def _checkout_importable() -> None:
    """The checkout's pytest plugins (fixtures/) importable, also by pytest -p and xdist workers."""
    if str(REPO) not in sys.path:
        sys.path.insert(0, str(REPO))


class _RefereeStatus:
    """Reads the exit status the referee report plugin computed from the verdicts."""

    def __init__(self) -> None:
        self.config = None

    def pytest_configure(self, config) -> None:
        self.config = config

    @property
    def exit(self) -> int | None:
        return getattr(self.config, "referee_exit", None)


def cmd_list(args) -> int:
    from referee.dut import ProfileError, load_profile
    from referee.scenario import load_all
    profile = None
    if args.dut:
        try:
            profile = load_profile(args.dut)
        except ProfileError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
    scenarios, errors = load_all(SCENARIOS)
    flows = python_flows()
    written_in = {id(sc): "yaml" for sc in scenarios} | {id(sc): "python" for sc in flows}
    everything = sorted(scenarios + flows, key=lambda sc: sc.id)
    from referee.dut.applicability import skip_reason
    applicable = 0
    for sc in everything:
        req = sc.requirement
        line = (f"{sc.id:<22} {written_in[id(sc)]:<6} {req.rfc:<9} §{req.section:<8} {req.level:<6} "
                f"{sc.dut_role:<11} {sc.title}")
        if profile is not None:
            reason = skip_reason(sc, profile)
            applicable += reason is None
            line += "" if reason is None else f"   [n/a: {reason}]"
        print(line)
    for err in errors:
        print(f"error: {err}", file=sys.stderr)
    share = 100 * len(scenarios) / len(everything) if everything else 0
    print(f"{len(everything)} test purposes: {len(scenarios)} in scenario files ({share:.0f} %), "
          f"{len(flows)} Python flows" + (f"; {applicable} apply to {profile.name!r}" if profile is not None else "")
          + (f"; {len(errors)} broken files" if errors else ""))
    return 1 if errors else 0


def cmd_matrix(args, extra: list[str]) -> int:
    from referee import matrix
    from referee.dut import ProfileError, load_profile
    paths = [pathlib.Path(p) for p in args.profiles]
    if not paths:
        for path in sorted(DUTS.glob("*.toml")):
            try:
                profile = load_profile(path)
            except ProfileError as exc:
                print(f"error: {exc}", file=sys.stderr)
                return 2
            if profile.driver or profile.launch:      # the ones referee can start by itself
                paths.append(path)
    if args.shard:
        _checkout_importable()
        from fixtures.sharding import parse_shard, split
        try:
            k, n = parse_shard(args.shard)
        except ValueError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
        mine = set(split([str(p) for p in paths], n, {})[k - 1])     # the profiles weigh the same
        paths = [p for p in paths if str(p) in mine]
        print(f"matrix: shard {k}/{n}: {', '.join(p.name for p in paths) or 'no profile'}")
    return matrix.main(paths, pathlib.Path(args.out), pathlib.Path(args.report_dir).resolve(), extra)


def python_flows() -> list:
    """The test purposes written as @python_flow functions in suites/ (imported to read their metadata)."""
    import importlib.util
    if str(REPO) not in sys.path:
        sys.path.insert(0, str(REPO))
    found = []
    for path in sorted(SUITES.rglob("test_*.py")):
        spec = importlib.util.spec_from_file_location(f"_referee_list_{path.stem}_{abs(hash(path))}", path)
        module = importlib.util.module_from_spec(spec)
        sys.path.insert(0, str(path.parent))
        try:
            spec.loader.exec_module(module)
        except Exception as exc:    # a broken suite module is reported, the listing goes on
            print(f"error: cannot import {path.relative_to(REPO)}: {type(exc).__name__}: {exc}", file=sys.stderr)
            continue
        finally:
            sys.path.remove(str(path.parent))
        found += [obj.scenario for obj in vars(module).values() if callable(obj) and hasattr(obj, "scenario")]
    unique = {sc.id: sc for sc in found}
    return list(unique.values())


def cmd_schema(args) -> int:
    import json
    from referee.schemas import schema_text
    if args.write:
        out = pathlib.Path(args.write)
        out.mkdir(parents=True, exist_ok=True)
        for which in ("scenario", "profile"):
            (out / f"{which}.schema.json").write_text(schema_text(which), encoding="utf-8")
            print(f"wrote {out / f'{which}.schema.json'}")
        return 0
    print(schema_text(args.which), end="")
    return 0


def cmd_steps() -> int:
    """The step library, for scenario authors: each check/action, what it does, its arguments."""
    from referee.scenario.library import library
    for name, entry in sorted(library().items(), key=lambda kv: (kv[1].kind, kv[0])):
        print(f"{entry.kind}: {name}    ({entry.module.removeprefix('referee.checks.')})")
        for line in entry.doc.splitlines():
            print(f"    {line}".rstrip())
        for arg, param in entry.params.items():
            flag = "required" if param.required else f"default {param.default!r}" if param.default is not None else "optional"
            choices = f"; one of {', '.join(map(str, param.choices))}" if param.choices else ""
            print(f"      {arg} ({param.type}, {flag}{choices}): {param.doc}")
        print()
    return 0


def cmd_validate(args) -> int:
    from referee.dut import ProfileError, load_profile
    from referee.scenario import ScenarioError, load_all, load_scenarios
    problems: list[str] = []
    count = 0
    if args.files:
        for name in args.files:
            path = pathlib.Path(name)
            try:
                if path.suffix == ".toml":
                    load_profile(path)
                else:
                    load_scenarios(path)
                count += 1
            except (ScenarioError, ProfileError) as exc:
                problems.append(str(exc))
    else:
        scenarios, errors = load_all(SCENARIOS)
        count += len({sc.file for sc in scenarios})
        problems += [str(e) for e in errors]
        for path in sorted(DUTS.rglob("*.toml")):
            try:
                load_profile(path)
                count += 1
            except ProfileError as exc:
                problems.append(str(exc))
    from referee.scenario.library import LOAD_ERRORS, library
    library()
    problems += LOAD_ERRORS
    for problem in problems:
        print(problem)
    print(f"{count} files valid, {len(problems)} with errors")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
