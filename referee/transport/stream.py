"""TCP and TLS transports: listen, connect on demand, frame messages by Content-Length."""

from __future__ import annotations

import asyncio
import ssl

from referee.sip import SipParseError, frame_stream

import socket

from .base import Address, OnReceive, Received, SocketFactory, Transport, TransportError

CONNECT_TIMEOUT = 5.0
MAX_BUFFER = 1 << 20   # a peer that sends a megabyte without a complete message is broken


class TcpTransport(Transport):
    kind = "tcp"
    reliable = True

    def __init__(self, on_receive: OnReceive, server_ssl: ssl.SSLContext | None = None,
                 client_ssl: ssl.SSLContext | None = None, socket_factory: SocketFactory | None = None) -> None:
        super().__init__(on_receive)
        self.socket_factory = socket_factory
        self.kind = "tls" if server_ssl else "tcp"
        self._server: asyncio.base_events.Server | None = None
        self._server_ssl = server_ssl
        self._client_ssl = client_ssl
        self._writers: dict[Address, asyncio.StreamWriter] = {}
        self._tasks: set[asyncio.Task] = set()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        _small_reads(writer)
        peer = writer.get_extra_info("peername")
        address = (peer[0], peer[1])
        self._writers[address] = writer
        await self._read_loop(reader, address)

    async def _read_loop(self, reader: asyncio.StreamReader, address: Address) -> None:
        buffer = b""
        try:
            while True:
                chunk = await reader.read(65536)
                if not chunk:
                    break
                buffer += chunk
                while True:
                    try:
                        message, buffer = frame_stream(buffer)
                    except SipParseError as exc:
                        self.on_receive(Received(buffer, address, self.local, self.kind, error=str(exc)))
                        return
                    if message is None:
                        break
                    self.on_receive(Received(message, address, self.local, self.kind))
                if len(buffer) > MAX_BUFFER:
                    self.on_receive(Received(buffer[:200], address, self.local, self.kind,
                                             error=f"{len(buffer)} bytes without a complete message"))
                    return
        except (ConnectionError, asyncio.IncompleteReadError, ssl.SSLError):
            pass
        finally:
            writer = self._writers.pop(address, None)
            if writer is not None:
                writer.close()

    async def _connect(self, dest: Address) -> asyncio.StreamWriter:
        try:
            if self.socket_factory is None:
                connecting = asyncio.open_connection(dest[0], dest[1], ssl=self._client_ssl,
                                                     local_addr=(self.local[0], 0))
            else:
                family = socket.AF_INET6 if ":" in dest[0] else socket.AF_INET
                sock = self.socket_factory(family, socket.SOCK_STREAM)
                sock.setblocking(False)
                sock.bind((self.local[0], 0))
                await asyncio.get_running_loop().sock_connect(sock, dest)
                connecting = asyncio.open_connection(sock=sock, ssl=self._client_ssl,
                                                     server_hostname=dest[0] if self._client_ssl else None)
            reader, writer = await asyncio.wait_for(connecting, CONNECT_TIMEOUT)
        except (OSError, asyncio.TimeoutError, ssl.SSLError) as exc:
            raise TransportError(f"cannot connect {self.kind} to {dest[0]}:{dest[1]}: {exc}") from None
        _small_reads(writer)
        self._writers[dest] = writer
        task = asyncio.get_running_loop().create_task(self._read_loop(reader, dest))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return writer

    async def send(self, data: bytes, dest: Address) -> None:
        writer = self._writers.get(dest)
        if writer is None or writer.is_closing():
            writer = await self._connect(dest)
        try:
            writer.write(data)
            await asyncio.wait_for(writer.drain(), CONNECT_TIMEOUT)
        except (OSError, asyncio.TimeoutError) as exc:
            raise TransportError(f"{self.kind} send to {dest[0]}:{dest[1]} failed: {exc}") from None

    def close(self) -> None:
        if self._server is not None:
            self._server.close()
        for writer in list(self._writers.values()):
            writer.close()
        self._writers.clear()
        for task in list(self._tasks):
            task.cancel()


def _small_reads(writer: asyncio.StreamWriter) -> None:
    """Have a plain TCP connection read 64 KiB at a time: asyncio's default (256 KiB) is above
    malloc's mmap threshold, so every read cost an mmap, an mremap and an munmap. (TLS reads
    through its own buffer.)"""
    transport = writer.transport
    if hasattr(transport, "max_size"):
        transport.max_size = 65536


async def open_tcp(host: str, port: int, on_receive: OnReceive,
                   socket_factory: SocketFactory | None = None) -> TcpTransport:
    return await _listen(TcpTransport(on_receive, socket_factory=socket_factory), host, port)


async def open_tls(host: str, port: int, on_receive: OnReceive, server_ssl: ssl.SSLContext | None = None,
                   client_ssl: ssl.SSLContext | None = None,
                   socket_factory: SocketFactory | None = None) -> TcpTransport:
    if server_ssl is None or client_ssl is None:
        raise TransportError("TLS needs server_ssl and client_ssl contexts (see make_test_certificates)")
    return await _listen(TcpTransport(on_receive, server_ssl, client_ssl, socket_factory), host, port)


async def _listen(transport: TcpTransport, host: str, port: int) -> TcpTransport:
    try:
        if transport.socket_factory is not None:
            family = socket.AF_INET6 if ":" in host else socket.AF_INET
            sock = transport.socket_factory(family, socket.SOCK_STREAM)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind((host, port))
            transport._server = await asyncio.start_server(transport._serve, sock=sock,
                                                           ssl=transport._server_ssl)
        else:
            transport._server = await asyncio.start_server(transport._serve, host, port,
                                                           ssl=transport._server_ssl, reuse_address=True)
    except OSError as exc:
        raise TransportError(f"cannot listen on {transport.kind} {host}:{port}: {exc.strerror}") from None
    bound = transport._server.sockets[0].getsockname()
    transport.local = (bound[0], bound[1])
    return transport
