"""Runs the vos3k RTP relay alone in its own process for bench/rtp_load.py.

Usage: rtp_vos3k_relay.py SESSIONS A_HOST:A_PORT B_HOST:B_PORT LOW-HIGH

Opens SESSIONS media sessions whose leg A points at A and leg B at B, prints one JSON
line `[[a_rtp_port, b_rtp_port], ...]` (A sends to a_rtp_port, B to b_rtp_port), then
relays until SIGTERM.
"""

from __future__ import annotations

import json
import sys


def main(argv: list[str]) -> int:
    from twisted.internet import epollreactor

    epollreactor.install()
    from twisted.internet import reactor

    from vos3k.media.policy import Leg
    from vos3k.media.relay import MediaManager, MediaSession

    sessions, a, b, ports = argv
    a_host, a_port = a.rsplit(":", 1)
    b_host, b_port = b.rsplit(":", 1)
    low, high = (int(p) for p in ports.split("-"))
    # The parameters a call would snapshot; the timeout is off, as in a bench nobody hangs up.
    params = type("Params", (), {})()
    params.snapshot = {"SS_RTP_LATCH_STRICT": 0, "SS_QOS_RTP": 160, "SS_NOMEDIAHANGUPTIME": 0}
    manager = MediaManager(reactor, reactor, "127.0.0.1", (low, high), params)
    pairs = []
    for index in range(int(sessions)):
        session = manager.open_session(f"bench-{index}")
        if not isinstance(session, MediaSession):
            print(json.dumps({"error": f"ports exhausted after {index} sessions"}), flush=True)
            return 1
        session.set_remote(Leg.A, a_host, int(a_port), "sendrecv")
        session.set_remote(Leg.B, b_host, int(b_port), "sendrecv")
        pairs.append([session.local_address(Leg.A)[1], session.local_address(Leg.B)[1]])
    print(json.dumps(pairs), flush=True)
    reactor.run()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
