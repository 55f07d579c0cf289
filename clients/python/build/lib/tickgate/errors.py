"""The one exception type of the SDK: every failure has a stable ``code``.

Gateway refusals carry the gateway's own code (``unknown_channel``, ``nonce_reused``, …: the
table in docs/protocol.md §10) and, over REST, the HTTP ``status``. Failures found by the SDK
itself have codes of their own:

=======================  ====================================================================
``invalid_argument``     an argument was rejected before anything was sent
``invalid_credentials``  a key id, secret or private key is malformed (never echoed)
``unreachable``          the gateway could not be reached (connect, TLS, timeout)
``protocol_error``       the gateway sent something this SDK cannot read
``closed``               the client was closed, or gave up reconnecting
=======================  ====================================================================
"""

from __future__ import annotations

# Codes the gateway uses for refusals that a retry with the same input may get past.
_RETRYABLE = frozenset(
    {"rate_limited", "unavailable", "book_unavailable", "internal", "unreachable"}
)


class TickgateError(Exception):
    """A refusal or failure, with the gateway's stable ``code`` (switch on it, not on text)."""

    def __init__(
        self, code: str, message: str, *, status: int | None = None, channel: str | None = None
    ) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message
        self.status = status
        self.channel = channel

    @property
    def retryable(self) -> bool:
        """Whether the same request may succeed later (rate limits, restarts, rebuilding)."""
        return self.code in _RETRYABLE

    def __repr__(self) -> str:
        extra = f", status={self.status}" if self.status is not None else ""
        return f"TickgateError(code={self.code!r}, message={self.message!r}{extra})"


def invalid_argument(message: str) -> TickgateError:
    return TickgateError("invalid_argument", message)
