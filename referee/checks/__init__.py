"""The step library: named checks and actions that scenario files call with arguments.

    - check: call_up
      args: {call: call1}

Each module here registers its steps with referee.scenario.library (`check` / `action`), with a
description and its parameters; `referee steps` lists them, `referee schema` publishes their
arguments. One module per topic (calls, notifies, the REFER, Replaces, proxies, the wire and
NAT, PBX end-to-end state, media ...); every module of this package is loaded.
"""

import importlib
import pkgutil

for _module in sorted(m.name for m in pkgutil.iter_modules(__path__)):
    importlib.import_module(f"{__name__}.{_module}")
