"""referee.agent — the scriptable test UA."""

from .agent import Agent
from .evidence import Evidence, evidence_of
from .matchers import (Expectation, ExpectationFailed, HeaderMatcher, header_matchers, kind_matches,
                       status_matches)
from .objects import Call, ClientRequest, Inbound, Incoming, LogEntry

__all__ = ["Agent", "Evidence", "evidence_of", "Expectation", "ExpectationFailed", "HeaderMatcher", "header_matchers",
           "kind_matches", "status_matches", "Call", "ClientRequest", "Inbound", "Incoming", "LogEntry"]
