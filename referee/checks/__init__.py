"""The step library: named checks and actions that scenario files call with arguments.

    - check: call_up
      args: {call: call1}

Each module here registers its steps with referee.scenario.library (`check` / `action`), with a
description and its parameters; `referee steps` lists them, `referee schema` publishes their
arguments. One module per topic (calls, notifies, the REFER, Replaces, proxies, the wire and
NAT, PBX end-to-end state, media ...); every module of this package is loaded. A module that
cannot be imported is reported (referee.scenario.library.LOAD_ERRORS) and the others still load.
"""

import importlib
import pkgutil
import traceback

from referee.scenario.library import LOAD_ERRORS

for _module in sorted(m.name for m in pkgutil.iter_modules(__path__)):
    try:
        importlib.import_module(f"{__name__}.{_module}")
    except Exception as _exc:       # noqa: BLE001 - one broken module must not hide the others
        _where = traceback.extract_tb(_exc.__traceback__)[-1]
        LOAD_ERRORS.append(f"referee/checks/{_module}.py: cannot be loaded: {type(_exc).__name__}: {_exc}"
                           + (f" (line {_exc.lineno})" if isinstance(_exc, SyntaxError) else
                              f" (at {_where.filename.rsplit('/', 1)[-1]}:{_where.lineno})"))
