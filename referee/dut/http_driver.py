"""HttpDriver: a device asked to act through its HTTP call-control API.

Desk phones take "action URLs" (a GET that dials or transfers) or REST calls; the profile maps
each action to one request (`[actions.NAME]`: `url`, `method`, `body`, `headers`, `handle`) and
gives the shared settings in `[http]` (`auth` basic|digest, `username`, `password`, `timeout`,
`headers`). Placeholders in the URL are percent-encoded; in the body and headers they go in as
they are. A request that fails or is answered with a non-2xx status is a DriverError naming the
action, the status and the answer; the SIP evidence is then awaited by the runner.

Requests go only to the DUT's own address, loopback or the suite's test ranges.
"""

from __future__ import annotations

import urllib.parse

from referee.transport import DestinationPolicy

from .driver import DriverError
from .httpcall import HttpCallError, send
from .upper import UpperTesterDriver
from .upper_profile import expand


class HttpDriver(UpperTesterDriver):
    name = "http"

    def _ask(self, action: str, **given: str) -> str:
        spec = self._spec(action)
        settings = self.upper.http
        values = self.values(**given)
        url = expand(spec.url, values, quote=lambda v: urllib.parse.quote(v, safe=""))
        self._check_destination(action, url)
        body = expand(spec.body, values)
        headers = [(k, expand(v, values)) for k, v in (*settings.headers, *spec.headers)]
        shown = f"{spec.method} {self.redact(url)}"
        try:
            answer = send(spec.method, url, body, headers, settings.auth, settings.username, settings.password,
                          settings.timeout)
        except HttpCallError as exc:
            self._note(f"{action}: {shown} -> {exc}")
            raise DriverError(self.redact(f"http: {action}: {shown} failed: {exc}")) from None
        text = answer.text.strip()
        self._note(self.redact(f"{action}: {shown} -> {answer.status} {answer.reason} {text[:200]}".rstrip()))
        if not answer.ok:
            raise DriverError(self.redact(f"http: {action}: {shown} was answered {answer.status} {answer.reason}"
                                          f"{': ' + text[:500] if text else ' (no body)'}"))
        return text

    def _check_destination(self, action: str, url: str) -> None:
        """Requests go only where the suite may send: the DUT's own address (the run accepted it),
        loopback and the test ranges."""
        host = urllib.parse.urlsplit(url).hostname or ""
        if host != self.host and not DestinationPolicy().allows(host):
            raise DriverError(f"http: {action}: refusing to send a request to {host}: not the DUT's address "
                              f"({self.host}), loopback or a test range (fix: the action URLs of the profile)")
