"""How the client proves who it is: nothing, a bearer key, an hmac or ed25519 key that signs
every request (RFC 9421), or single-use WebSocket tokens for environments that must not hold
a key.

Secrets never appear in ``repr``, ``str``, exceptions or logs. (Python cannot reliably wipe
memory; the secret lives as one ``bytes`` object inside the credentials.)
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from .errors import TickgateError
from .signing import hmac_sha256, sign_request

_KEY_ID = re.compile(r"key_[A-Za-z0-9_-]{1,64}")
_SECRET = re.compile(r"tg_(live|test)_[A-Za-z0-9_-]{8,256}")

TokenProvider = Callable[[], Awaitable[str]]


def _invalid(message: str) -> TickgateError:
    return TickgateError("invalid_credentials", message)


def _check_key_id(key_id: str) -> str:
    if not isinstance(key_id, str) or not _KEY_ID.fullmatch(key_id):
        raise _invalid("the key id must look like key_… (letters, digits, '_' or '-')")
    return key_id


def _check_secret(secret: str | bytes, what: str) -> bytes:
    if isinstance(secret, bytes):
        try:
            secret = secret.decode("ascii")
        except UnicodeDecodeError:
            raise _invalid(f"the {what} is not ASCII") from None
    if not isinstance(secret, str):
        raise _invalid(f"the {what} must be a string")
    secret = secret.strip()
    if not _SECRET.fullmatch(secret):
        raise _invalid(f"the {what} must be a tickgate secret as issued (tg_live_… or tg_test_…)")
    return secret.encode("ascii")


class Credentials:
    """Use the constructors: :meth:`none`, :meth:`bearer`, :meth:`hmac`, :meth:`ed25519_pem`,
    :meth:`ed25519_seed`, :meth:`ws_token`."""

    __slots__ = ("_ed25519", "_provider", "_secret", "key_id", "kind")

    def __init__(
        self,
        kind: str,
        *,
        key_id: str | None = None,
        secret: bytes | None = None,
        ed25519: Ed25519PrivateKey | None = None,
        provider: TokenProvider | None = None,
    ) -> None:
        self.kind = kind
        self.key_id = key_id
        self._secret = secret
        self._ed25519 = ed25519
        self._provider = provider

    # -- constructors -----------------------------------------------------------------------

    @classmethod
    def none(cls) -> Credentials:
        return cls("none")

    @classmethod
    def bearer(cls, token: str) -> Credentials:
        """A bearer key (``tg_live_…``/``tg_test_…``), sent as ``Authorization: Bearer``."""
        return cls("bearer", secret=_check_secret(token, "bearer token"))

    @classmethod
    def hmac(cls, key_id: str, secret: str | bytes) -> Credentials:
        """An hmac key: its id and its secret exactly as issued; every request is signed."""
        return cls("hmac", key_id=_check_key_id(key_id), secret=_check_secret(secret, "secret"))

    @classmethod
    def ed25519_pem(cls, key_id: str, pem: str | bytes) -> Credentials:
        """An ed25519 key: its id and the PKCS#8 ``PRIVATE KEY`` PEM (as ``openssl genpkey
        -algorithm ed25519`` or ``tickgate keys create --generate-keypair`` writes it)."""
        data = pem.encode() if isinstance(pem, str) else pem
        try:
            key = serialization.load_pem_private_key(data, password=None)
        except (ValueError, TypeError):
            raise _invalid("the ed25519 key is not an unencrypted PKCS#8 PEM private key") from None
        if not isinstance(key, Ed25519PrivateKey):
            raise _invalid("the PEM private key is not an ed25519 key")
        return cls("ed25519", key_id=_check_key_id(key_id), ed25519=key)

    @classmethod
    def ed25519_seed(cls, key_id: str, seed: bytes) -> Credentials:
        """An ed25519 key from its 32-byte seed."""
        if not isinstance(seed, bytes) or len(seed) != 32:
            raise _invalid("an ed25519 seed is exactly 32 bytes")
        return cls(
            "ed25519",
            key_id=_check_key_id(key_id),
            ed25519=Ed25519PrivateKey.from_private_bytes(seed),
        )

    @classmethod
    def ws_token(cls, provider: TokenProvider) -> Credentials:
        """Single-use WebSocket tokens: ``provider`` is awaited for a fresh ``tgws_…`` token on
        every connection (each reconnect too), e.g. a call to your backend, which issues them
        with ``POST /v1/ws-token``. REST calls with these credentials are anonymous."""
        if not callable(provider):
            raise _invalid("the ws-token provider must be an async callable returning a token")
        return cls("ws_token", provider=provider)

    # -- use ----------------------------------------------------------------------------------

    def headers(self, method: str, url: str, body: bytes | None = None) -> dict[str, str]:
        """Authentication headers for one HTTP request (signed afresh: ``created`` = now and a
        new nonce on every call)."""
        if self.kind == "bearer":
            assert self._secret is not None
            return {"Authorization": "Bearer " + self._secret.decode()}
        if self.kind == "hmac":
            assert self._secret is not None and self.key_id is not None
            return sign_request(
                method,
                url,
                body,
                key_id=self.key_id,
                alg="hmac-sha256",
                sign=hmac_sha256(self._secret),
            )
        if self.kind == "ed25519":
            assert self._ed25519 is not None and self.key_id is not None
            return sign_request(
                method, url, body, key_id=self.key_id, alg="ed25519", sign=self._ed25519.sign
            )
        return {}

    async def fresh_token(self) -> str | None:
        """A new single-use token (``ws_token`` credentials), else None."""
        if self._provider is None:
            return None
        token = await self._provider()
        if not isinstance(token, str) or not token:
            raise _invalid("the ws-token provider returned no token")
        return token

    def __repr__(self) -> str:
        if self.kind in ("hmac", "ed25519"):
            return f"Credentials.{self.kind}(key_id={self.key_id!r}, secret=REDACTED)"
        if self.kind == "bearer":
            return "Credentials.bearer(REDACTED)"
        return f"Credentials.{self.kind}()"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:  # identity only: never compare secrets
        return self is other

    __hash__ = object.__hash__
