"""referee.stack — sans-I/O SIP state machines: transactions, dialogs, REFER subscriptions.

No sockets and no clock reads: callers pass `now` and carry out the returned actions.
"""

from .dialog import CSeqError, Dialog, DialogId, DialogState, new_tag
from .layer import MAGIC_COOKIE, TransactionLayer, new_branch
from .subscription import NotifyCheck, ReferNotifier, ReferSubscriber, SubState
from .timers import FakeClock, TimerConfig
from .transaction import (Absorbed, Action, ClientTransaction, PassUp, Send, ServerTransaction, State,
                          TimedOut, Transaction, build_non2xx_ack)

__all__ = [
    "CSeqError", "Dialog", "DialogId", "DialogState", "new_tag", "MAGIC_COOKIE",
    "TransactionLayer", "new_branch", "NotifyCheck", "ReferNotifier", "ReferSubscriber",
    "SubState", "FakeClock", "TimerConfig", "Absorbed", "Action", "ClientTransaction", "PassUp", "Send",
    "ServerTransaction", "State", "TimedOut", "Transaction", "build_non2xx_ack",
]
