"""A B2BUA test PBX: every user leg is its own dialog, transfers are carried out by the PBX itself
(or passed on), media is relayed (or re-INVITEd away); conformant by default, with switchable
faults (tests/faulty/b2bua/faults.py).

    python tests/faulty/b2bua/main.py --profile PROFILE.toml --host 127.0.0.1 --port PORT \
        [--faults a,b] [--transfer act|pass] [--media relay|reinvite] [--ring-timeout SECONDS] \
        [--challenge-refer]

Users (extension, port, host, password) come from the profile's [users]. Listens on UDP and TCP
at HOST:PORT, prints `READY <host> <port>` once listening, one log line per notable event, and
stops cleanly on SIGTERM/SIGINT. This file is the I/O shell: sockets, the clock and the RTP
relay; the behaviour lives in the sans-I/O core (core.py).
"""

from __future__ import annotations

import argparse
import asyncio
import pathlib
import random
import signal
import socket
import sys

HERE = pathlib.Path(__file__).resolve()
sys.path[:0] = [str(HERE.parents[3]), str(HERE.parents[1])]      # the repository, and tests/faulty

from referee.stack import TimerConfig  # noqa: E402
from referee.dut.profile import ProfileError, load_profile  # noqa: E402
from referee.transport import DestinationPolicy, Received, TransportError, open_transport  # noqa: E402

from b2bua.actions import Log, ReleaseMedia, RouteMedia, SendSip  # noqa: E402
from b2bua.core import B2bua, Config  # noqa: E402
from b2bua.faults import FAULTS  # noqa: E402

RELAY_PORTS = (40000, 59998)        # relay pairs are picked among these even ports
BIND_ATTEMPTS = 50


def say(text: str) -> None:
    print(text, flush=True)


class RelayPorts:
    """The RTP relay: a socket pair (RTP, RTCP) per leg, forwarding as the core routes it."""

    def __init__(self, host: str, policy: DestinationPolicy, loop: asyncio.AbstractEventLoop) -> None:
        self.host = host
        self.policy = policy
        self.loop = loop
        self.sockets: dict[int, socket.socket] = {}           # port -> socket (RTP and RTCP ports)
        self.routes: dict[int, tuple[int, tuple[str, int]]] = {}   # RTP port -> (out port, dest)

    def allocate(self) -> int:
        family = socket.AF_INET6 if ":" in self.host else socket.AF_INET
        for _ in range(BIND_ATTEMPTS):
            port = random.randrange(RELAY_PORTS[0], RELAY_PORTS[1], 2)
            pair = []
            try:
                for p in (port, port + 1):
                    sock = socket.socket(family, socket.SOCK_DGRAM)
                    pair.append(sock)
                    sock.bind((self.host, p))
                    sock.setblocking(False)
            except OSError:
                for sock in pair:
                    sock.close()
                continue
            for p, sock in zip((port, port + 1), pair):
                self.sockets[p] = sock
                self.loop.add_reader(sock.fileno(), self._readable, p)
            return port
        raise OSError("no free relay port pair")

    def route(self, action: RouteMedia) -> None:
        if action.dest is None or action.out_port is None:
            self.routes.pop(action.port, None)
        else:
            self.routes[action.port] = (action.out_port, action.dest)

    def release(self, port: int) -> None:
        self.routes.pop(port, None)
        for p in (port, port + 1):
            sock = self.sockets.pop(p, None)
            if sock is not None:
                self.loop.remove_reader(sock.fileno())
                sock.close()

    def _readable(self, port: int) -> None:
        sock = self.sockets.get(port)
        if sock is None:
            return
        try:
            data, _ = sock.recvfrom(4096)
        except OSError:
            return
        rtcp = port % 2 == 1
        route = self.routes.get(port - 1 if rtcp else port)
        if route is None:
            return
        out_port, (host, dest_port) = route
        out = self.sockets.get(out_port + 1 if rtcp else out_port)
        dest = (host, dest_port + 1 if rtcp else dest_port)
        if out is None or not self.policy.allows(host):
            return
        try:
            out.sendto(data, dest)
        except OSError:
            pass

    def close(self) -> None:
        for port in [p for p in self.sockets if p % 2 == 0]:
            self.release(port)


class Shell:
    """Sockets and time for the core: feeds it what arrives, carries out what it returns."""

    def __init__(self, config: Config) -> None:
        self.config = config
        self.loop = asyncio.get_running_loop()
        self.policy = DestinationPolicy()
        self.relay = RelayPorts(config.host, self.policy, self.loop)
        self.core: B2bua | None = None     # made once the port is known (it is in Via, Contact, realm)
        self.transports: dict = {}
        self.queue: asyncio.Queue[Received] = asyncio.Queue()
        self.lock = asyncio.Lock()         # one core call and its actions at a time, in order
        self.wakeup = asyncio.Event()
        self.tasks: list[asyncio.Task] = []

    async def start(self) -> int:
        host, port = self.config.host, self.config.port
        for _ in range(BIND_ATTEMPTS if port == 0 else 1):
            udp = await open_transport("udp", host, port, self.queue.put_nowait)
            try:
                tcp = await open_transport("tcp", host, udp.local[1], self.queue.put_nowait)
            except TransportError:
                udp.close()
                if port:
                    raise
                continue
            self.transports = {"udp": udp, "tcp": tcp}
            self.config.port = udp.local[1]
            self.core = B2bua(self.config, self.relay, now=self.loop.time())
            self.tasks = [self.loop.create_task(self._receiving()), self.loop.create_task(self._timing())]
            return udp.local[1]
        raise TransportError(f"no port free for both UDP and TCP on {host}")

    async def _receiving(self) -> None:
        while True:
            rx = await self.queue.get()
            if rx.error is not None:
                say(f"dropped bytes from {rx.source[0]}:{rx.source[1]}: {rx.error}")
                continue
            async with self.lock:
                await self._guarded(lambda: self.core.receive(rx.data, rx.source, rx.transport, self.loop.time()))
            self.wakeup.set()

    async def _timing(self) -> None:
        while True:
            deadline = self.core.next_deadline()
            timeout = None if deadline is None else max(0.0, deadline - self.loop.time())
            self.wakeup.clear()
            try:
                async with asyncio.timeout(timeout):
                    await self.wakeup.wait()
            except TimeoutError:
                pass
            async with self.lock:
                await self._guarded(lambda: self.core.tick(self.loop.time()))

    async def _guarded(self, step) -> None:
        """Run one core step and its actions; an error is logged, never fatal."""
        try:
            await self._carry_out(step())
        except Exception as exc:
            say(f"error: {type(exc).__name__}: {exc}")

    async def _carry_out(self, actions) -> None:
        for action in actions:
            if isinstance(action, SendSip):
                await self._send(action)
            elif isinstance(action, RouteMedia):
                self.relay.route(action)
            elif isinstance(action, ReleaseMedia):
                self.relay.release(action.port)
            elif isinstance(action, Log):
                say(action.text)

    async def _send(self, action: SendSip) -> None:
        try:
            self.policy.check(action.dest)
            await self.transports[action.transport].send(bytes(action.message), action.dest)
        except TransportError as exc:
            say(f"send {action.message.summary()} to {action.dest[0]}:{action.dest[1]} failed: {exc}")
            await self._carry_out(self.core.send_failed(action.message, self.loop.time()))

    async def close(self) -> None:
        for task in self.tasks:
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)
        for transport in self.transports.values():
            transport.close()
        self.relay.close()


def arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profile", required=True, help="the PBX profile (users, extensions, passwords)")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--faults", default="", help=f"comma-separated: {', '.join(FAULTS)}")
    parser.add_argument("--transfer", choices=("act", "pass"), default="act",
                        help="act: the PBX carries out transfers itself; pass: it passes the REFER on")
    parser.add_argument("--media", choices=("relay", "reinvite"), default="relay",
                        help="relay: RTP through the PBX; reinvite: end to end, re-INVITEs after a transfer")
    parser.add_argument("--ring-timeout", type=float, default=30.0,
                        help="seconds a call or a transfer's INVITE may ring before it is cancelled")
    parser.add_argument("--challenge-refer", action="store_true",
                        help="challenge in-dialog REFERs with 407 as well")
    parser.add_argument("--timer-t1", type=float, default=0.5,
                        help="RFC 3261 T1 in seconds (Timer B, the INVITE timeout, is 64*T1): a lab PBX "
                             "tuned to give up on an unreachable phone sooner")
    args = parser.parse_args()
    args.fault_set = frozenset(f for f in args.faults.split(",") if f)
    unknown = args.fault_set - set(FAULTS)
    if unknown:
        parser.error(f"unknown faults: {', '.join(sorted(unknown))}")
    if not 0 < args.ring_timeout <= 600:
        parser.error("--ring-timeout must be in (0, 600] seconds")
    if not 0.05 <= args.timer_t1 <= 2.0:
        parser.error("--timer-t1 must be in [0.05, 2] seconds")
    return args


async def main() -> int:
    args = arguments()
    try:
        profile = load_profile(args.profile)
    except ProfileError as exc:
        say(f"error: {exc}")
        return 2
    config = Config(args.host, args.port, list(profile.users.values()), domain=profile.domain,
                    default_transport=profile.transport, faults=args.fault_set, transfer=args.transfer,
                    media=args.media, ring_timeout=args.ring_timeout, challenge_refer=args.challenge_refer,
                    timers=TimerConfig(t1=args.timer_t1))
    shell = Shell(config)
    try:
        port = await shell.start()
    except TransportError as exc:
        say(f"error: {exc}")
        return 2
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        shell.loop.add_signal_handler(sig, stop.set)
    say(f"READY {args.host} {port} transfer={args.transfer} media={args.media} "
        f"faults={','.join(sorted(args.fault_set)) or 'none'}")
    await stop.wait()
    await shell.close()
    say("stopped")
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
