"""twistd plugin: `twistd vos3k`."""

from twisted.application.service import ServiceMaker

vos3k = ServiceMaker("vos3k", "vos3k.tap", "SIP/H.323 softswitch with billing and CDRs", "vos3k")
