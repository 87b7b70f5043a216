"""Sans-IO H.323: TPKT, Q.931, H.225.0 (pycrate PER), RAS and H.245."""
