"""Wires the SIP endpoint and its UDP/TCP transport into the running VosService.

After ``install_sip(service)``:

- ``service.sip`` is the ``SipEndpoint`` (the B2BUA sets ``service.sip.call_layer``);
- ``service.sip.transport`` is the ``SipTransport`` (the protection layer sets
  ``service.sip.transport.admit_source``);
- ``service.indexes`` is the store's ``HotIndexes`` (made here when no one has yet);
- ``stats`` shows ``sip_received``, ``sip_sent``, ``sip_malformed``, ``sip_errors``,
  ``sip_transactions`` and ``signalling_dropped``.

The endpoint is a child before the transport, so bindings are loaded before the first
packet and, on shutdown, the sockets close before the endpoint's timer stops.
"""

from __future__ import annotations

from typing import Any

from vos3k.sip.endpoint import SipEndpoint
from vos3k.sip.transport import SipTransport, listen_hosts

__all__ = ["install_sip"]


def install_sip(service: Any) -> SipEndpoint:
    settings = service.settings
    indexes = getattr(service, "indexes", None)
    if indexes is None:
        from vos3k.store.indexes import HotIndexes

        indexes = service.indexes = HotIndexes(service.store)
    listen = tuple(settings.sip_listen)
    endpoint = SipEndpoint(
        service.reactor,
        service.params,
        phone_of=lambda e164: indexes.phones.get(e164),
        registrations=service.store.registrations,
        realm=settings.sip_realm,
        own_hosts=(*listen_hosts(listen), *settings.sip_domains),
        wildcard_listen=any(a.host in ("0.0.0.0", "::") for a in listen),
    )
    transport = SipTransport(
        service.reactor,
        listen,
        endpoint,
        tos=int(service.params.snapshot.qos_signal_tos),
    )
    endpoint.transport = transport
    endpoint.setServiceParent(service)
    service.add_listener(transport)
    service.sip = endpoint
    stats = transport.stats
    service.gauges.update(
        {
            "sip_received": lambda: stats["received"],
            "sip_sent": lambda: stats["sent"],
            "sip_malformed": lambda: stats["malformed"],
            "sip_errors": lambda: stats["errors"],
            "signalling_dropped": lambda: stats["dropped"],
            "sip_transactions": lambda: len(endpoint.layer),
        }
    )
    return endpoint
