"""referee.wire — evidence on the wire.

Per-test packet capture (scapy AsyncSniffer, also inside network namespaces), pcap files,
SIP extraction from UDP datagrams and reassembled TCP streams, on-wire assertions, and the
lan — nat — wan topology with the kernel SIP ALG.
"""

from .assertions import (WireAssertionError, assert_header, assert_nothing_sent_to,
                         assert_response_to_source, assert_retransmissions_same_branch,
                         cross_check, find_messages, rtp_flows)
from .capture import Capture, CaptureError
from .netns import NetnsError, call_in_netns
from .packets import (Segment, WireDefect, WireError, WireMessage, WireTrace, analyze_frames,
                      iter_pcap, read_pcap)
from .topology import Host, Topology, TopologyError, available, cleanup_leftovers, list_netns

__all__ = [
    "WireAssertionError", "assert_header", "assert_nothing_sent_to", "assert_response_to_source",
    "assert_retransmissions_same_branch", "cross_check", "find_messages", "rtp_flows",
    "Capture", "CaptureError", "NetnsError", "call_in_netns", "Segment", "WireDefect",
    "WireError", "WireMessage", "WireTrace", "analyze_frames", "iter_pcap", "read_pcap",
    "Host", "Topology", "TopologyError", "available", "cleanup_leftovers", "list_netns",
]
