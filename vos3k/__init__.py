"""vos3k: a carrier softswitch (SIP, H.323, RTP proxy, billing, CDRs) on Twisted."""

__version__ = "0.1.0"
