"""SIP dialog state and in-dialog request building (RFC 3261 §12, §13.2.2.4, §15), sans-IO.

Public API (frozen values; every change returns a new ``Dialog``):

- ``Dialog.uac(request, response) -> Dialog | DialogError``: from our INVITE and a
  1xx-with-To-tag or 2xx (§12.1.2).  ``Dialog.uas(request, local_tag,
  local_contact) -> Dialog | DialogError``: from a received INVITE (§12.1.1).
- ``dialog.on_response(response)``: early -> confirmed on 2xx (target and, from
  early, route set refreshed per §13.2.2.4), terminated on a failure.
- ``dialog.on_request(request) -> Dialog | DialogError``: checks and advances the
  remote CSeq (§12.2.2: lower -> 500), refreshes the target on re-INVITE/UPDATE
  (§12.2.2 target refresh), BYE terminates.
- ``dialog.new_request(method, via, ...) -> (Dialog, Request)``: Request-URI and
  Route per §12.2.1.1 (loose and strict routing), CSeq incremented except for
  ACK and CANCEL; ``dialog.ack(invite_cseq, via)`` is the ACK for a 2xx.
- ``DialogId`` and ``request_dialog_id(req)`` / ``response_dialog_id(resp)`` to
  find the dialog an incoming message belongs to.
"""

from __future__ import annotations

from enum import Enum

import attrs
from attrs import frozen

from vos3k.sip.message import HeaderError, NameAddr, Request, Response, parse_name_addr
from vos3k.sip.uri import Uri

__all__ = [
    "Dialog",
    "DialogError",
    "DialogId",
    "DialogState",
    "request_dialog_id",
    "response_dialog_id",
]


class DialogState(Enum):
    __hash__ = object.__hash__  # members are singletons: identity hash (table keys)

    EARLY = "early"
    CONFIRMED = "confirmed"
    TERMINATED = "terminated"


class DialogInput(Enum):
    __hash__ = object.__hash__  # members are singletons: identity hash (table keys)

    R1XX = "1xx"
    R2XX = "2xx"
    R3XX_6XX = "300-699"
    BYE = "BYE"


# RFC 3261 §12.1 / §12.3: (state, input) -> next state
DIALOG = {
    (DialogState.EARLY, DialogInput.R1XX): DialogState.EARLY,
    (DialogState.EARLY, DialogInput.R2XX): DialogState.CONFIRMED,
    (DialogState.EARLY, DialogInput.R3XX_6XX): DialogState.TERMINATED,
    (DialogState.EARLY, DialogInput.BYE): DialogState.TERMINATED,
    (DialogState.CONFIRMED, DialogInput.R1XX): DialogState.CONFIRMED,  # late provisional
    (DialogState.CONFIRMED, DialogInput.R2XX): DialogState.CONFIRMED,  # 2xx retransmission
    (DialogState.CONFIRMED, DialogInput.R3XX_6XX): DialogState.CONFIRMED,  # a failed re-INVITE
    (DialogState.CONFIRMED, DialogInput.BYE): DialogState.TERMINATED,
}


@frozen
class DialogError:
    """Why a message cannot create or continue a dialog; ``status`` to answer (0: none)."""

    reason: str
    status: int = 400


@frozen
class DialogId:
    """§12: Call-ID + local tag + remote tag, from our side's point of view."""

    call_id: str
    local_tag: str
    remote_tag: str


def request_dialog_id(request: Request) -> DialogId | None:
    """The id of the dialog an incoming request belongs to (To tag = ours), or None."""
    try:
        local = request.to().tag
        remote = request.from_().tag
        call_id = request.call_id()
    except HeaderError:
        return None
    if not local:
        return None  # out-of-dialog request (§12.2.2 applies to To-tagged requests)
    return DialogId(call_id, local, remote or "")


def response_dialog_id(response: Response) -> DialogId | None:
    """The id of the dialog a response to our request belongs to (From tag = ours)."""
    try:
        local = response.from_().tag
        remote = response.to().tag
        call_id = response.call_id()
    except HeaderError:
        return None
    if not local or not remote:
        return None
    return DialogId(call_id, local, remote)


def _response_input(status: int) -> DialogInput:
    if status < 200:
        return DialogInput.R1XX
    return DialogInput.R2XX if status < 300 else DialogInput.R3XX_6XX


def _target(contacts: tuple[NameAddr, ...]) -> str | None:
    return str(contacts[0].uri) if contacts else None


@frozen
class Dialog:
    call_id: str
    local_tag: str
    remote_tag: str
    local_party: str  # the From (UAC) / To (UAS) value we send, tag included
    remote_party: str
    remote_target: str
    route_set: tuple[str, ...]  # name-addr values, in the order we put them in Route
    local_cseq: int
    remote_cseq: int | None
    local_contact: str | None = None
    state: DialogState = DialogState.EARLY
    secure: bool = False

    @property
    def id(self) -> DialogId:
        return DialogId(self.call_id, self.local_tag, self.remote_tag)

    # -- creation (§12.1) --------------------------------------------------

    @classmethod
    def uac(
        cls, request: Request, response: Response, local_contact: str | None = None
    ) -> Dialog | DialogError:
        """§12.1.2: our request and a 101-299 response with a To tag."""
        try:
            remote_tag = response.to().tag
            local_tag = request.from_().tag
            if not (100 < response.status < 300) or not remote_tag or not local_tag:
                return DialogError("response does not create a dialog", 0)
            target = _target(response.contacts())
            if target is None:
                return DialogError("no Contact in dialog-creating response", 0)
            routes = tuple(reversed([str(r) for r in response.record_routes()]))
            return cls(
                call_id=request.call_id(),
                local_tag=local_tag,
                remote_tag=remote_tag,
                local_party=request.header("from") or "",
                remote_party=response.header("to") or "",
                remote_target=target,
                route_set=routes,
                local_cseq=request.cseq().number,
                remote_cseq=None,
                local_contact=local_contact or request.header("contact"),
                state=DialogState.EARLY if response.status < 200 else DialogState.CONFIRMED,
                secure=request.request_uri().scheme == "sips",
            )
        except HeaderError as exc:
            return DialogError(str(exc), 0)

    @classmethod
    def uas(
        cls, request: Request, local_tag: str, local_contact: str | None = None
    ) -> Dialog | DialogError:
        """§12.1.1: a received dialog-creating request; our response carries ``local_tag``."""
        try:
            target = _target(request.contacts())
            if target is None:
                return DialogError("no Contact in dialog-creating request")  # §8.1.1.8
            remote_tag = request.from_().tag or ""
            to_value = request.header("to") or ""
            return cls(
                call_id=request.call_id(),
                local_tag=local_tag,
                remote_tag=remote_tag,
                local_party=f"{to_value};tag={local_tag}",
                remote_party=request.header("from") or "",
                remote_target=target,
                route_set=tuple(str(r) for r in request.record_routes()),
                local_cseq=0,
                remote_cseq=request.cseq().number,
                local_contact=local_contact,
                secure=request.request_uri().scheme == "sips",
            )
        except HeaderError as exc:
            return DialogError(str(exc))

    # -- updates -----------------------------------------------------------

    def on_response(self, response: Response) -> Dialog:
        """A response within this dialog (to our INVITE, re-INVITE or UPDATE)."""
        next_state = DIALOG.get((self.state, _response_input(response.status)), self.state)
        changes: dict = {"state": next_state}
        if 200 <= response.status < 300 and response.cseq().method in ("INVITE", "UPDATE"):
            target = _target(response.contacts())
            if target is not None:
                changes["remote_target"] = target  # §12.2.1.2 target refresh
            if self.state is DialogState.EARLY and response.cseq().method == "INVITE":
                # §13.2.2.4: the 2xx's Record-Route replaces the early route set
                changes["route_set"] = tuple(reversed([str(r) for r in response.record_routes()]))
        return attrs.evolve(self, **changes)

    def on_request(self, request: Request) -> Dialog | DialogError:
        """§12.2.2: a request the peer sent within this dialog."""
        if request.method in ("ACK", "CANCEL"):
            return self  # they reuse the CSeq of what they acknowledge / cancel
        cseq = request.cseq().number
        if self.remote_cseq is not None and cseq <= self.remote_cseq:
            return DialogError("CSeq lower than the dialog's remote sequence", 500)
        changes: dict = {"remote_cseq": cseq}
        if request.method in ("INVITE", "UPDATE"):
            target = _target(request.contacts())
            if target is not None:
                changes["remote_target"] = target
        if request.method == "BYE":
            changes["state"] = DIALOG[(self.state, DialogInput.BYE)]
        return attrs.evolve(self, **changes)

    # -- building requests (§12.2.1.1) -------------------------------------

    def _uri_and_routes(self) -> tuple[str, list[str]]:
        if not self.route_set:
            return self.remote_target, []
        first = _route_uri(self.route_set[0])
        if first is not None and first.has_param("lr"):
            return self.remote_target, list(self.route_set)  # loose routing
        # strict routing: the first route becomes the Request-URI (without params the
        # Request-URI may not carry), the remote target goes last in Route
        uri = str(attrs.evolve(first, headers=())) if first is not None else self.remote_target
        return uri, [*self.route_set[1:], f"<{self.remote_target}>"]

    def new_request(
        self,
        method: str,
        via: str,
        *,
        headers: tuple[tuple[str, str], ...] = (),
        body: bytes = b"",
        content_type: str | None = None,
        cseq: int | None = None,
        max_forwards: int = 70,
    ) -> tuple[Dialog, Request]:
        """A request within the dialog; ``via`` is the full Via value with a new branch."""
        if cseq is None:
            cseq = self.local_cseq if method in ("ACK", "CANCEL") else self.local_cseq + 1
        dialog = self if method in ("ACK", "CANCEL") else attrs.evolve(self, local_cseq=cseq)
        uri, routes = self._uri_and_routes()
        out: list[tuple[str, str]] = [("Via", via), ("Max-Forwards", str(max_forwards))]
        out += [("Route", r) for r in routes]
        out += [
            ("From", self.local_party),
            ("To", self.remote_party),
            ("Call-ID", self.call_id),
            ("CSeq", f"{cseq} {method}"),
        ]
        if self.local_contact and method in ("INVITE", "UPDATE", "SUBSCRIBE", "REFER"):
            out.append(("Contact", self.local_contact))  # §12.2.1.1 target refresh requests
        out += headers
        if body and content_type:
            out.append(("Content-Type", content_type))
        out.append(("Content-Length", str(len(body))))
        if method == "BYE":
            dialog = attrs.evolve(dialog, state=DialogState.TERMINATED)
        return dialog, Request(method, uri, tuple(out), body)

    def ack(
        self, invite_cseq: int, via: str, body: bytes = b"", content_type: str | None = None
    ) -> Request:
        """§13.2.2.4: the ACK for a 2xx, CSeq number of the INVITE, a new branch in ``via``."""
        _same, request = self.new_request(
            "ACK", via, cseq=invite_cseq, body=body, content_type=content_type
        )
        return request


def _route_uri(route: str) -> Uri | None:
    try:
        return parse_name_addr(route).uri
    except HeaderError:
        return None
