"""referee.scenario — REFER flows as data (YAML) or Python, and the runner that plays them."""

from .binding import Binding, DutEndpoint
from .flow import Flow, StepFailed
from .loader import ScenarioError, load_all, load_scenario, load_scenarios
from .model import Requirement, Scenario
from .pyflow import python_flow
from .run import run_scenario, run_steps
from .trace import StepResult, Trace, TraceMessage

__all__ = ["Binding", "DutEndpoint", "Flow", "StepFailed", "ScenarioError", "load_all", "load_scenario", "load_scenarios",
           "Requirement", "Scenario", "python_flow", "run_scenario", "run_steps", "StepResult", "Trace", "TraceMessage"]
