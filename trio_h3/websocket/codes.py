"""WebSocket close codes: RFC 6455 §7.4 and the IANA registry it set up (§11.7). Pure.

:class:`CloseCode` names every registered code, with the RFC's own words; the two sets
say which codes a close frame may carry and which closes end ``async for`` quietly.
"""

from __future__ import annotations

from enum import IntEnum
from typing import Final

__all__ = ["CloseCode"]


class CloseCode(IntEnum):
    """RFC 6455, Section 7.4.1 - Defined Status Codes (and 1012-1014 from the registry).

    The member names are wsproto's (``wsproto.frame_protocol.CloseReason``), so a code
    reads the same in both; 1014 is here and not there.
    """

    #: indicates a normal closure, meaning that the purpose for which the connection was
    #: established has been fulfilled.
    NORMAL_CLOSURE = 1000

    #: indicates that an endpoint is "going away", such as a server going down or a
    #: browser having navigated away from a page.
    GOING_AWAY = 1001

    #: indicates that an endpoint is terminating the connection due to a protocol error.
    PROTOCOL_ERROR = 1002

    #: indicates that an endpoint is terminating the connection because it has received a
    #: type of data it cannot accept (e.g., an endpoint that understands only text data
    #: MAY send this if it receives a binary message).
    UNSUPPORTED_DATA = 1003

    # 1004: "Reserved. The specific meaning might be defined in the future." Not defined
    # here on purpose, so nobody sends it.

    #: is a reserved value and MUST NOT be set as a status code in a Close control frame
    #: by an endpoint. It is designated for use in applications expecting a status code
    #: to indicate that no status code was actually present.
    NO_STATUS_RCVD = 1005

    #: is a reserved value and MUST NOT be set as a status code in a Close control frame
    #: by an endpoint. It is designated for use in applications expecting a status code
    #: to indicate that the connection was closed abnormally, e.g., without sending or
    #: receiving a Close control frame.
    ABNORMAL_CLOSURE = 1006

    #: indicates that an endpoint is terminating the connection because it has received
    #: data within a message that was not consistent with the type of the message (e.g.,
    #: non-UTF-8 [RFC3629] data within a text message).
    INVALID_FRAME_PAYLOAD_DATA = 1007

    #: indicates that an endpoint is terminating the connection because it has received
    #: a message that violates its policy. This is a generic status code that can be
    #: returned when there is no other more suitable status code (e.g., 1003 or 1009) or
    #: if there is a need to hide specific details about the policy.
    POLICY_VIOLATION = 1008

    #: indicates that an endpoint is terminating the connection because it has received
    #: a message that is too big for it to process.
    MESSAGE_TOO_BIG = 1009

    #: indicates that an endpoint (client) is terminating the connection because it has
    #: expected the server to negotiate one or more extension, but the server didn't
    #: return them in the response message of the WebSocket handshake. [...] Note that
    #: this status code is not used by the server, because it can fail the WebSocket
    #: handshake instead.
    MANDATORY_EXT = 1010

    #: indicates that a server is terminating the connection because it encountered an
    #: unexpected condition that prevented it from fulfilling the request.
    INTERNAL_ERROR = 1011

    #: Service Restart (IANA registry, not in RFC 6455's text): the server is restarting;
    #: a client may reconnect, after a randomised delay.
    SERVICE_RESTART = 1012

    #: Try Again Later (IANA registry): the server is overloaded or otherwise unable to
    #: serve the client now.
    TRY_AGAIN_LATER = 1013

    #: Bad Gateway (IANA registry): the server, acting as a gateway or proxy, received an
    #: invalid response from the upstream server (HTTP 502's equivalent).
    BAD_GATEWAY = 1014

    #: is a reserved value and MUST NOT be set as a status code in a Close control frame
    #: by an endpoint. It is designated for use in applications expecting a status code
    #: to indicate that the connection was closed due to a failure to perform a TLS
    #: handshake (e.g., the server certificate can't be verified).
    TLS_HANDSHAKE_FAILED = 1015


#: The registered codes of 1000-2999 a close frame may carry: every one of them except
#: 1005, 1006 and 1015 ("MUST NOT be set as a status code in a Close control frame by an
#: endpoint", RFC 6455 §7.4.1). 1010 is a client's code, but nothing forbids a server it.
REGISTERED_SENDABLE_CODES: Final[frozenset[int]] = frozenset(
    code
    for code in CloseCode
    if code
    not in (CloseCode.NO_STATUS_RCVD, CloseCode.ABNORMAL_CLOSURE, CloseCode.TLS_HANDSHAKE_FAILED)
)

#: Close codes after which ``async for message in ws`` ends quietly instead of raising:
#: a normal closure, a peer going away, and a close frame without a code.
NORMAL_CLOSE_CODES: Final[frozenset[int]] = frozenset(
    {CloseCode.NORMAL_CLOSURE, CloseCode.GOING_AWAY, CloseCode.NO_STATUS_RCVD}
)


def may_send(code: int) -> bool:
    """Whether an endpoint may put ``code`` in a close frame (RFC 6455 §7.4.2).

    1000-2999 are "reserved for definition by this protocol, its future revisions, and
    extensions": only the registered ones (:data:`REGISTERED_SENDABLE_CODES`). 3000-3999
    are for "libraries, frameworks, and applications" (registered with IANA), 4000-4999
    are "reserved for private use": an application may send any of those.
    """
    return code in REGISTERED_SENDABLE_CODES or 3000 <= code <= 4999
