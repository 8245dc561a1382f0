"""How many tests `referee run` runs at once (referee.cli.default_workers), the profile key
`parallel`, and the order pytest-xdist hands the tests out in (fixtures/sharding.py)."""

from __future__ import annotations

import pathlib
import types

import pytest

from referee.cli import CONCURRENT_TESTS, default_workers
from referee.dut import ProfileError, load_profile

PHONE = 'name = "p"\nkind = "phone"\nroles = ["transferee"]\n'
PBX_USERS = ('[users.alice]\nextension = "1001"\n{a}\n[users.bob]\nextension = "1002"\n{b}\n'
             '[users.carol]\nextension = "1003"\n{c}\n')


def profile(tmp_path: pathlib.Path, text: str) -> str:
    path = tmp_path / "dut.toml"
    path.write_text(text)
    return str(path)


@pytest.mark.parametrize("text, workers", [
    (PHONE + 'driver = "refphone"\n', CONCURRENT_TESTS),                      # launched per test
    (PHONE + 'driver = "refphone"\nparallel = 2\n', 2),                       # capped by the profile
    (PHONE + 'driver = "refphone"\naddress = "127.0.0.1:5070"\n', 0),         # one port: one at a time
    (PHONE + 'address = "127.0.0.1:5070"\n', 1),                              # external: serial
    (PHONE + 'address = "127.0.0.1:5070"\nparallel = 6\n', 6),                # ... unless it says more
    ('name = "pbx"\nkind = "pbx"\naddress = "127.0.0.1:5060"\n'
     + PBX_USERS.format(a="port = 6001", b="port = 6002", c="port = 6003"), 0),   # a PBX: its users
    ('name = "pbx"\nkind = "pbx"\naddress = "127.0.0.1:5060"\nregister = true\n'
     + PBX_USERS.format(a='password = "a"', b='password = "b"', c='password = "c"'), 0),
    ('name = "proxy"\nkind = "proxy"\naddress = "127.0.0.1:5060"\nparallel = 3\n', 3),
    ('name = "pbx"\nkind = "pbx"\nlaunch = ["{python}", "pbx.py", "{port}"]\nregister = true\n'    # its own
     + PBX_USERS.format(a='password = "a"', b='password = "b"', c='password = "c"'), CONCURRENT_TESTS),  # per test
])
def test_default_workers(tmp_path, text, workers):
    assert default_workers(profile(tmp_path, text), []) == workers


def test_load_steps_run_one_at_a_time(tmp_path):
    path = profile(tmp_path, PHONE + 'driver = "refphone"\n')
    assert default_workers(path, [], "load") == 0
    assert default_workers(path, [], "load and rfc3515") == 0
    assert default_workers(path, [], "not load") == CONCURRENT_TESTS


def test_workers_given_on_the_command_line_win(tmp_path):
    path = profile(tmp_path, PHONE + 'driver = "refphone"\n')
    assert default_workers(path, ["-n", "2"]) == 0
    assert default_workers(path, ["-p", "no:xdist"]) == 0


@pytest.mark.parametrize("value", ["0", "65", "2.5", '"4"', "true"])
def test_parallel_must_be_a_number_of_tests(tmp_path, value):
    with pytest.raises(ProfileError, match="key 'parallel'.*fix: parallel = 4"):
        load_profile(profile(tmp_path, PHONE + f'address = "127.0.0.1:5070"\nparallel = {value}\n'))


def test_parallel_is_refused_for_a_pbx_the_tests_share(tmp_path):
    text = ('name = "pbx"\nkind = "pbx"\naddress = "127.0.0.1:5060"\nregister = true\nparallel = 2\n'
            + PBX_USERS.format(a='password = "a"', b='password = "b"', c='password = "c"'))
    with pytest.raises(ProfileError, match="key 'parallel': a PBX takes one test at a time"):
        load_profile(profile(tmp_path, text))


# -- the order the tests are handed out in ------------------------------------------------------

class FakeNode:
    def __init__(self, name: str) -> None:
        self.name = name
        self.gateway = types.SimpleNamespace(id=name)
        self.got: list[int] = []
        self.shutting_down = False

    def send_runtest_some(self, indices: list[int]) -> None:
        self.got += indices

    def shutdown(self) -> None:
        self.shutting_down = True


def scheduler(collection: list[str], durations: dict[str, float], nodes: int):
    from fixtures.sharding import longest_first_scheduler
    options = {"tx": [f"{nodes}*popen"], "maxschedchunk": None}
    config = types.SimpleNamespace(referee_shard_durations=durations, getoption=options.get, getvalue=options.get)
    sched = longest_first_scheduler()(config, None)
    workers = [FakeNode(f"gw{i}") for i in range(nodes)]
    for node in workers:
        sched.add_node(node)
        sched.add_node_collection(node, collection)
    sched.schedule()
    return sched, workers


def finish(sched, node: FakeNode) -> None:
    """The node is done with the test it runs."""
    sched.mark_test_complete(node, sched.node2pending[node][0])


def test_the_longest_tests_start_at_once_each_with_a_short_one_in_hand():
    # collection order: longest first (pytest_collection_modifyitems), not applicable last
    names = ["long-33", "long-12", "long-6", "mid-2", "mid-1", "short-a", "short-b", "na-1", "na-2"]
    collection = [f"suites/test_scenarios.py::test_scenario[{n}]" for n in names]
    durations = dict(zip(collection, [33, 12, 6, 2, 1, 0.2, 0.1, 0.002, 0.002]))
    sched, (gw0, gw1, gw2) = scheduler(collection, durations, 3)
    held = [[names[i] for i in node.got] for node in (gw0, gw1, gw2)]
    # each starts one of the three longest, and holds a short one that takes time (not an N/A)
    assert held == [["long-33", "short-b"], ["long-12", "short-a"], ["long-6", "mid-1"]]
    finish(sched, gw2)                     # long-6 done: gw2 runs mid-1, and holds the longest left
    assert [names[i] for i in gw2.got[2:]] == ["mid-2"]
    assert not gw0.shutting_down
    finish(sched, gw2)                     # mid-1 done: nothing else takes time, an N/A
    assert [names[i] for i in gw2.got[3:]] == ["na-2"]
    finish(sched, gw1)                     # long-12 done: the last test; gw1 runs what it holds, stops
    assert [names[i] for i in gw1.got[2:]] == ["na-1"] and gw1.shutting_down
    assert not gw0.shutting_down
    finish(sched, gw0)
    assert gw0.shutting_down and [names[i] for i in gw0.got] == ["long-33", "short-b"]


def test_referee_own_tests_keep_xdist_load_scheduling():
    collection = [f"tests/test_x.py::test_{i}" for i in range(20)]
    sched, workers = scheduler(collection, {}, 2)
    assert workers[0].got[:2] == [0, 1]    # xdist's consecutive chunks


def test_parallel_is_refused_for_users_on_fixed_ports(tmp_path):
    text = ('name = "pbx"\nkind = "pbx"\nlaunch = ["{python}", "pbx.py", "{port}"]\nparallel = 2\n'
            + PBX_USERS.format(a="port = 6001", b="port = 6002", c="port = 6003"))
    with pytest.raises(ProfileError, match="key 'parallel': users alice, bob, carol listen on fixed ports"):
        load_profile(profile(tmp_path, text))
