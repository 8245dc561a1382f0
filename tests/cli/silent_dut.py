"""A DUT that answers the first OPTIONS (referee's start-up probe) and then goes silent, as a
device that crashes or loses its network in the middle of a run.

    python tests/cli/silent_dut.py PORT
"""

import socket
import sys

sys.path.insert(0, __file__.rsplit("/tests/", 1)[0])

from referee.sip import Response, parse  # noqa: E402


def main() -> None:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", int(sys.argv[1])))
    sock.settimeout(120)              # never outlive the test that started it by much
    print("READY", flush=True)
    while True:
        try:
            data, source = sock.recvfrom(65535)
        except TimeoutError:
            return
        msg = parse(data)
        if msg.is_request and msg.method == "OPTIONS":
            headers = [("Via", v) for v in msg.header_all("Via")]
            headers += [("From", msg.header("From")), ("To", msg.header("To") + ";tag=silent"),
                        ("Call-ID", msg.call_id), ("CSeq", msg.header("CSeq"))]
            sock.sendto(bytes(Response(200, "OK", headers)), source)
            break                     # answered once; silent from now on
    while True:
        try:
            sock.recvfrom(65535)
        except TimeoutError:
            return


if __name__ == "__main__":
    main()
