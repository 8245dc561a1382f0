"""SIPp driven through pexpect: start, watch the screen, press keys, parse statistics, stop.

    from referee.sipp import Sipp, run

    with Sipp("uas_refer_load", calls=20) as uas:
        result = run("uac_refer_load", uas.address, calls=20, rate=10, timeout=30, check=True)

Scenario templates live in `scenarios/sipp/` (see `list_scenarios()`); `${name}` parameters
are filled from `params=`.
"""

from referee.sipp.binary import INSTALL_HINT, find_sipp, sipp_version
from referee.sipp.errors import (SippCallsFailed, SippError, SippNotFound, SippPortInUse,
                                 SippScenarioError, SippStartError, SippTemplateError, SippTimeout)
from referee.sipp.ports import free_port
from referee.sipp.process import Sipp, run
from referee.sipp.result import EXIT_MEANINGS, Progress, SippResult
from referee.sipp.scenarios import (TransferPair, escape_replaces, refer_to_replaces, start_attended_transferor,
                                     start_pair, start_transferee)
from referee.sipp.screen import MessageRow, ScreenSnapshot
from referee.sipp.template import SCENARIO_DIR, list_scenarios, render, template_params

__all__ = [
    "EXIT_MEANINGS", "INSTALL_HINT", "MessageRow", "Progress", "SCENARIO_DIR", "ScreenSnapshot",
    "Sipp", "SippCallsFailed", "SippError", "SippNotFound", "SippPortInUse", "SippResult",
    "SippScenarioError", "SippStartError", "SippTemplateError", "SippTimeout", "TransferPair",
    "escape_replaces", "find_sipp", "free_port", "list_scenarios", "refer_to_replaces", "render",
    "run", "sipp_version", "start_attended_transferor", "start_pair", "start_transferee",
    "template_params",
]
