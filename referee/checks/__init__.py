"""The step library: named checks and actions that scenario files call with arguments.

    - check: call_up
      args: {call: call1}

Each module registers its steps with referee.scenario.library (`check` / `action`), with a
description and its parameters; `referee steps` lists them, `referee schema` publishes their
arguments. Grouped by what they look at:

    calls        the state of calls and dialogs
"""

from . import calls  # noqa: F401
