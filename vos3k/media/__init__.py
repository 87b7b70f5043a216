"""RTP/RTCP proxy: port pairs, latching, relay, media timeout, statistics."""
