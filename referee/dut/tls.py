"""TLS material for a DUT on TLS and for the agents that talk to it.

Certificates are made at run time (referee.transport.tlscerts): a throw-away CA and one
certificate for 127.0.0.1 / ::1 / localhost, used both by the DUT (its TLS server) and by the
agents (theirs). Nobody verifies anybody: the DUT's certificate is self-made and a DUT's own
certificate may name anything, so the agents' client side does not check it, and the DUTs are
configured not to check the agents' (the agents still present it when asked).
"""

from __future__ import annotations

import pathlib
import ssl

from referee.transport.tlscerts import TestCertificates, make_test_certificates


def make_certificates(directory: pathlib.Path) -> TestCertificates:
    """A CA, a certificate and its key under `directory` (PEM files)."""
    return make_test_certificates(pathlib.Path(directory))


def combined_pem(certs: TestCertificates) -> pathlib.Path:
    """Certificate and key in one PEM file (what baresip's `sip_certificate` wants)."""
    path = certs.cert_file.with_name("cert-and-key.pem")
    path.write_bytes(certs.cert_file.read_bytes() + certs.key_file.read_bytes())
    return path


def agent_contexts(certs: TestCertificates) -> dict[str, ssl.SSLContext]:
    """server_ssl / client_ssl for referee.agent.Agent.start(transport="tls", ...)."""
    server = certs.server_context()
    client = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    client.check_hostname = False
    client.verify_mode = ssl.CERT_NONE          # the DUT's certificate is self-made
    client.load_cert_chain(certs.cert_file, certs.key_file)   # for a DUT that asks for one
    return {"server_ssl": server, "client_ssl": client}
