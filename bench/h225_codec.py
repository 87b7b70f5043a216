"""Benchmark: H.225.0 Setup/Connect encode and decode with vos3k/h323/h225.py, in µs.

The Setup carries aliases, addresses, a call identifier and a fast start offer of two
codecs (4 OpenLogicalChannels); the Connect answers with one OLC pair and H.245
tunnelling.  The baseline is pycrate's bare H323_UserInformation PER codec on the same
bytes (what vos3k builds on), so the gap is vos3k's own conversion cost.  Figures only
(no target in the issues: printed).  Writes bench/results/h225_codec.csv and .json.
Run: .venv/bin/python bench/h225_codec.py [--number N]
"""

from __future__ import annotations

import argparse
import sys
import timeit
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from _sip_harness import figure, write_result

from vos3k.h323.h225 import (
    Alias,
    AliasKind,
    Body,
    Codec,
    Direction,
    FastStartChannel,
    Malformed,
    TransportAddress,
    UserInformation,
    asn1,
    encode_olc,
    encode_user_information,
    fast_start_offer,
    parse_olc,
    parse_user_information,
)

CALL_ID = bytes(range(16))
CONF_ID = bytes(range(16, 32))


def setup_info() -> UserInformation:
    return UserInformation(
        Body.SETUP,
        call_identifier=CALL_ID,
        conference_id=CONF_ID,
        source_aliases=(Alias(AliasKind.DIALED_DIGITS, "7100001"),
                        Alias(AliasKind.H323_ID, "customer-gw")),
        destination_aliases=(Alias(AliasKind.DIALED_DIGITS, "10005551234"),),
        source_call_signal_address=TransportAddress("127.0.0.10", 1720),
        destination_call_signal_address=TransportAddress("127.0.0.1", 1720),
        fast_start=fast_start_offer((Codec.G711_ALAW, Codec.G729),
                                    TransportAddress("127.0.0.10", 30000)),
        h245_tunnelling=True,
        conference_goal="create",
    )  # fmt: skip


def connect_info() -> UserInformation:
    rtp = TransportAddress("127.0.0.1", 30010)
    rtcp = TransportAddress("127.0.0.1", 30011)
    answer = (
        encode_olc(FastStartChannel(1, Direction.RECEIVE, Codec.G711_ALAW, 20, 1, rtp, rtcp)),
        encode_olc(FastStartChannel(2, Direction.TRANSMIT, Codec.G711_ALAW, 20, 1,
                                    TransportAddress("127.0.0.10", 30000), rtcp)),
    )  # fmt: skip
    return UserInformation(
        Body.CONNECT,
        call_identifier=CALL_ID,
        conference_id=CONF_ID,
        h245_address=None,
        fast_start=answer,
        h245_tunnelling=True,
    )


def per_call_us(fn, number: int) -> float:
    """Best of 3 repeats, µs per call."""
    return min(timeit.repeat(fn, number=number, repeat=3)) / number * 1e6


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--number", type=int, default=300)
    args = ap.parse_args()
    n = args.number
    pdu = asn1().h225.H323_UserInformation
    rows, figures = [], []
    for label, info in (("Setup", setup_info()), ("Connect", connect_info())):
        data = encode_user_information(info)
        back = parse_user_information(data)
        if isinstance(back, Malformed) or back != info:
            print(f"{label}: round trip differs: {back}")
            return 1

        def raw_decode(data=data) -> None:
            pdu.from_aper(data)
            pdu.get_val()

        pdu.from_aper(data)
        value = pdu.get_val()
        enc = per_call_us(lambda info=info: encode_user_information(info), n)
        dec = per_call_us(lambda data=data: parse_user_information(data), n)
        raw_enc = per_call_us(lambda value=value: pdu.to_aper(value), n)
        raw_dec = per_call_us(raw_decode, n)
        print(f"H.225 {label:8s} ({len(data)} bytes PER, {len(info.fast_start)} OLCs): "
              f"encode {enc:7.1f} µs (pycrate alone {raw_enc:7.1f}), "
              f"decode {dec:7.1f} µs (pycrate alone {raw_dec:7.1f})")  # fmt: skip
        rows.append({"message": label, "bytes": len(data), "olcs": len(info.fast_start),
                     "encode_us": round(enc, 1), "decode_us": round(dec, 1),
                     "pycrate_encode_us": round(raw_enc, 1),
                     "pycrate_decode_us": round(raw_dec, 1)})  # fmt: skip
        anchor = "pycrate H323_UserInformation alone (no faster H.225 codec installed)"
        figures.append(figure(f"H.225 {label} encode", round(enc, 1), round(raw_enc, 1), "µs",
                              "printed", anchor, round(enc / raw_enc, 2)))  # fmt: skip
        figures.append(figure(f"H.225 {label} decode", round(dec, 1), round(raw_dec, 1), "µs",
                              "printed", anchor, round(dec / raw_dec, 2)))  # fmt: skip
    olc = setup_info().fast_start[0]
    olc_dec = per_call_us(lambda: parse_olc(olc), n)
    offer = per_call_us(
        lambda: fast_start_offer((Codec.G711_ALAW, Codec.G729), TransportAddress("127.0.0.1", 1)),
        n,
    )
    print(f"fast start: offer of 2 codecs (4 OLCs) encode {offer:7.1f} µs, one OLC decode "
          f"{olc_dec:7.1f} µs")  # fmt: skip
    rows.append({"message": "fastStart offer (4 OLC)", "encode_us": round(offer, 1)})
    rows.append({"message": "OLC", "decode_us": round(olc_dec, 1)})
    write_result("h225_codec", rows, figures)
    return 0


if __name__ == "__main__":
    sys.exit(main())
