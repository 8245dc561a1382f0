"""The final response the DUT gives to a request an agent sent: its status judged as soon as it
comes (a wrong answer is shown at once, with the response as evidence)."""

from __future__ import annotations

from referee.agent import ExpectationFailed, status_matches
from referee.scenario.library import Param, check
from referee.scenario.verdict import HarnessError


@check("final_response", """
    The DUT's final response to a request an agent sent has the expected status.

    Waits up to `timeout` seconds for the final response of `request` (provisional ones are
    passed over) and judges its status: `status`, or `or_status` when two answers are
    conformant. No final response at all is a FAIL too (every request gets one, RFC 3261 §8.2).
    """, request=Param("saved", "the request (a send or send_invite step's `save`)", required=True),
    status=Param("status", "the status it must have: 400, '2xx', '>=300' ...", required=True),
    or_status=Param("status", "another status that is also conformant (e.g. 429 beside '2xx')"),
    timeout=Param("number", "how long to wait for the final response, in seconds", default=5.0),
    why=Param("string", "what a wrong answer means, added to the report"))
async def final_response(ctx, request: str, status: str, or_status: str | None = None, timeout: float = 5.0,
                         why: str | None = None) -> None:
    from referee.agent.objects import ClientRequest
    cr = ctx.saved(request)
    if not isinstance(cr, ClientRequest):
        raise HarnessError(f"final_response: {request!r} is not a request an agent sent")
    method = cr.method
    wanted = f"{status} or {or_status}" if or_status is not None else str(status)
    try:
        response = await cr.final(timeout)
    except ExpectationFailed as exc:
        raise ctx.missing(cr.agent.name, f"a final response ({wanted}) to its {method} within {timeout:g} s",
                          str(exc), f"no final response to the {method} within {timeout:g} s ({exc})") from None
    ok = status_matches(status, response.status) or (or_status is not None
                                                     and status_matches(or_status, response.status))
    seen = f"{response.status} {response.reason}"
    if not ok:
        raise ctx.violation(response, "status", wanted, seen,
                            f"the {method} was answered {seen}, expected {wanted}" + (f": {why}" if why else ""))
    ctx.note(response)
    ctx.detail = f"{method} answered {seen}"
