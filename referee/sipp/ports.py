"""Free-port helpers: ask the OS for a port nobody holds right now."""

from __future__ import annotations

import os
import socket


def _bind(kind: int, host: str, port: int) -> socket.socket | None:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, kind)
    try:
        sock.bind((host, port))
    except OSError:
        sock.close()
        return None
    return sock


def port_is_free(host: str, port: int, udp: bool = True, tcp: bool = False) -> bool:
    """True if `port` can be bound on `host` for the asked protocols at this moment."""
    held = []
    try:
        for kind, wanted in ((socket.SOCK_DGRAM, udp), (socket.SOCK_STREAM, tcp)):
            if wanted:
                sock = _bind(kind, host, port)
                if sock is None:
                    return False
                held.append(sock)
        return True
    finally:
        for sock in held:
            sock.close()


def free_port(host: str = "127.0.0.1", udp: bool = True, tcp: bool = False, attempts: int = 50) -> int:
    """A port free for the asked protocols (UDP and/or TCP) on `host`."""
    first_kind = socket.SOCK_DGRAM if udp else socket.SOCK_STREAM
    for _ in range(attempts):
        sock = _bind(first_kind, host, 0)
        if sock is None:
            break
        port = sock.getsockname()[1]
        sock.close()
        if port_is_free(host, port, udp=udp, tcp=tcp):
            return port
    raise OSError(f"no free {'UDP' if udp else ''}{'/' if udp and tcp else ''}{'TCP' if tcp else ''} "
                  f"port found on {host} after {attempts} attempts")


def free_media_port(host: str = "127.0.0.1", attempts: int = 50) -> int:
    """An even UDP port p with p, p+1 and p+2 free: SIPp binds audio on p and video on p+2."""
    for _ in range(attempts):
        port = free_port(host) & ~1
        if port >= 1024 and port + 2 < 65536 and all(port_is_free(host, port + i) for i in range(3)):
            return port
    raise OSError(f"no free UDP port triple for SIPp media found on {host} after {attempts} attempts")


def _socket_inodes(pid: int) -> set[str]:
    inodes = set()
    fd_dir = f"/proc/{pid}/fd"
    try:
        names = os.listdir(fd_dir)
    except OSError:
        return inodes
    for name in names:
        try:
            target = os.readlink(f"{fd_dir}/{name}")
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(target[8:-1])
    return inodes


def process_holds_port(pid: int, port: int, udp: bool = True) -> bool:
    """True if process `pid` has a socket bound to local `port` (from /proc, Linux only)."""
    inodes = _socket_inodes(pid)
    if not inodes:
        return False
    tables = ("udp", "udp6") if udp else ("tcp", "tcp6")
    for table in tables:
        try:
            lines = open(f"/proc/net/{table}", encoding="ascii").read().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            if len(fields) > 9 and int(fields[1].rsplit(":", 1)[1], 16) == port and fields[9] in inodes:
                return True
    return False
