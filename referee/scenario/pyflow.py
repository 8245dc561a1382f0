"""Flows written in Python: the same metadata as a YAML file, the same Flow API for the steps.

    @python_flow(id="TE-MULTI-002", title="...", rfc="RFC 3515", section="2.4.6", level="MUST",
                 dut="transferee", parties={"transferor": "agent", "transferee": "dut"})
    async def second_refer(flow: Flow) -> None:
        await flow.call("call1", "transferor", "transferee")
        ...
"""

from __future__ import annotations

import inspect
import pathlib

from .model import Party, Requirement, Scenario


def python_flow(*, id: str, title: str, rfc: str, section: str, level: str, dut: str,
                parties: dict[str, str | dict], needs: list[str] | None = None, markers: list[str] | None = None,
                requirement: str = "", topology: str = "direct", dut_kinds: list[str] | None = None):
    def decorate(fn):
        built: dict[str, Party] = {}
        for name, spec in parties.items():
            options = dict(spec) if isinstance(spec, dict) else {}
            kind = options.pop("kind", "agent") if isinstance(spec, dict) else spec
            built[name] = Party(name, kind, options)
        default_kinds = ["pbx"] if dut == "pbx" else ["proxy"] if dut == "proxy" else ["phone"]
        fn.scenario = Scenario(
            id=id, title=title, file=pathlib.Path(inspect.getfile(fn)),
            requirement=Requirement(rfc, section, level, requirement), dut_role=dut, parties=built, steps=[],
            needs=list(needs or []), dut_kinds=dut_kinds or default_kinds, topology=topology,
            markers=list(markers or []))
        return fn
    return decorate
