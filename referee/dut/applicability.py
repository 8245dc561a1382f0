"""Does a scenario apply to a DUT profile? One answer for `referee run` (skips) and `referee list`."""

from __future__ import annotations

from referee.scenario import Scenario

from .profile import Profile


def skip_reason(scenario: Scenario, profile: Profile) -> str | None:
    """Why this scenario does not apply to this DUT (None: it applies)."""
    if profile.kind not in scenario.dut_kinds:
        return f"{scenario.id} is for a {'/'.join(scenario.dut_kinds)} DUT; {profile.name!r} is a {profile.kind}"
    if profile.kind == "phone" and not profile.can_play(scenario.dut_role):
        return f"{profile.name!r} does not declare the role {scenario.dut_role!r} (roles: {', '.join(profile.roles)})"
    missing = profile.missing(scenario.needs)
    if missing:
        return f"{profile.name!r} does not declare {', '.join(missing)}"
    if profile.kind == "pbx":
        agents = sum(1 for p in scenario.parties.values() if p.kind == "agent")
        if agents > len(profile.users):
            return (f"{scenario.id} plays {agents} users of the PBX; the profile {profile.path.name} lists "
                    f"{len(profile.users)} (add [users.*] tables to run it)")
    needs_driver = scenario.dut_role == "transferor" or any(type(s).__name__ == "DutStep" for s in scenario.steps)
    if needs_driver and not profile.driver:
        return f"needs a driver to make {profile.name!r} act (no `driver` in its profile)"
    if scenario.topology == "nat":
        from referee.wire.topology import available
        ok, why = available()
        if not ok:
            return f"NAT topology unavailable: {why}"
    return None
