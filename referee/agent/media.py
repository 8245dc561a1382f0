"""Media an agent sends and hears: short RTP bursts whose payload names the sender, and a record
of every RTP packet that reaches the agent's media socket.

The payload (160 bytes of "PCMU") starts with `referee:<agent>:<call-id>;` so a packet that went
through a PBX's media relay still says who sent it and in which call, whatever source address
and SSRC the relay gave it. A relay that decodes and re-encodes audio would lose the tag; the
checks then say so (RTP arrived, but untagged).
"""

from __future__ import annotations

import dataclasses
import secrets
import socket
import time

from referee.sip.sdp import Sdp

TAG = b"referee:"
PAYLOAD_SIZE = 160


@dataclasses.dataclass(frozen=True)
class RtpPacket:
    time: float                      # wall clock of arrival
    source: tuple[str, int]
    ssrc: int
    sender: str                      # the agent named in the payload, '' if untagged
    call_id: str                     # the sender's call, '' if untagged


def media_address(sdp_body: bytes) -> tuple[str, int] | None:
    """Where the first audio stream of an SDP body wants its RTP (None: no usable audio)."""
    if not sdp_body:
        return None
    sdp = Sdp.parse(sdp_body)
    audio = next((m for m in sdp.media if m.kind == "audio" and m.port), None)
    if audio is None:
        return None
    connection = sdp.connection_for(audio)
    if connection is None or connection.is_null:
        return None
    return connection.address, audio.port


def tagged_packets(sender: str, call_id: str, count: int, payload_type: int = 0) -> list[bytes]:
    tag = TAG + sender.encode() + b":" + call_id.encode()[:100] + b";"
    payload = (tag + b"\xff" * PAYLOAD_SIZE)[:max(PAYLOAD_SIZE, len(tag))]
    ssrc = secrets.randbits(32)
    return [bytes([0x80, payload_type & 0x7F]) + seq.to_bytes(2, "big") + (seq * 160).to_bytes(4, "big")
            + ssrc.to_bytes(4, "big") + payload for seq in range(count)]


def parse_packet(data: bytes, source: tuple[str, int]) -> RtpPacket | None:
    """An RTP packet (version 2, 12-byte header at least); None for anything else."""
    if len(data) < 12 or data[0] >> 6 != 2:
        return None
    header_len = 12 + 4 * (data[0] & 0x0F)
    payload = data[header_len:]
    sender, call_id = "", ""
    if payload.startswith(TAG):
        end = payload.find(b";", len(TAG))
        if end > 0:
            who, _, cid = payload[len(TAG):end].decode("utf-8", "replace").partition(":")
            sender, call_id = who, cid
    return RtpPacket(time.time(), source, int.from_bytes(data[8:12], "big"), sender, call_id)


class MediaRecorder:
    """Reads the agent's RTP socket (non-blocking, from the event loop) and keeps what arrived."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.packets: list[RtpPacket] = []

    def on_readable(self) -> None:
        for _ in range(64):                      # drain what is there, then yield to the loop
            try:
                data, source = self.sock.recvfrom(2048)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                return
            packet = parse_packet(data, source[:2])
            if packet is not None:
                self.packets.append(packet)

    def since(self, t: float) -> list[RtpPacket]:
        return [p for p in self.packets if p.time >= t]
