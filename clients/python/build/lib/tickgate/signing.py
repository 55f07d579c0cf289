"""RFC 9421 HTTP Message Signatures as the gateway verifies them (docs/security.md, "Signed
requests"): covered ``@method``, ``@authority``, ``@path``, ``@query`` when the URL has a query,
``content-digest`` (RFC 9530, sha-256) when there is a body; parameters ``created``, ``keyid``,
a fresh random ``nonce`` and ``alg``. Checked in the tests against the independent
``http-message-signatures`` library and against a real gateway.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import time
from collections.abc import Callable
from urllib.parse import urlsplit

_DEFAULT_PORTS = {"http": 80, "ws": 80, "https": 443, "wss": 443}


def authority(url: str) -> str:
    """The ``@authority`` of a URL: lower-case host, and the port unless it is the scheme's
    default (RFC 9421 §2.2.3); the same text as the ``Host`` header an HTTP client sends."""
    parts = urlsplit(url)
    host = (parts.hostname or "").lower()
    if ":" in host:  # an IPv6 literal keeps its brackets
        host = f"[{host}]"
    port = parts.port
    if port is None or port == _DEFAULT_PORTS.get(parts.scheme.lower()):
        return host
    return f"{host}:{port}"


def content_digest(body: bytes) -> str:
    return "sha-256=:" + base64.b64encode(hashlib.sha256(body).digest()).decode() + ":"


def signature_base(method: str, url: str, params: str, digest: str | None) -> str:
    """The signature base for the components this SDK covers, ending with the
    ``@signature-params`` line (lines joined by LF, no final newline)."""
    parts = urlsplit(url)
    lines = [
        f'"@method": {method.upper()}',
        f'"@authority": {authority(url)}',
        f'"@path": {parts.path or "/"}',
    ]
    if parts.query:
        lines.append(f'"@query": ?{parts.query}')
    if digest is not None:
        lines.append(f'"content-digest": {digest}')
    lines.append(f'"@signature-params": {params}')
    return "\n".join(lines)


def sign_request(
    method: str,
    url: str,
    body: bytes | None,
    *,
    key_id: str,
    alg: str,
    sign: Callable[[bytes], bytes],
    created: int | None = None,
    nonce: str | None = None,
    label: str = "sig1",
) -> dict[str, str]:
    """Headers (``Signature-Input``, ``Signature`` and, with a body, ``Content-Digest``) for one
    request. ``created`` defaults to now and ``nonce`` to 128 random bits: pass them only to
    reproduce a known vector."""
    components = ['"@method"', '"@authority"', '"@path"']
    if urlsplit(url).query:
        components.append('"@query"')
    headers: dict[str, str] = {}
    digest = None
    if body:
        digest = content_digest(body)
        headers["Content-Digest"] = digest
        components.append('"content-digest"')
    created = int(time.time()) if created is None else created
    nonce = secrets.token_urlsafe(16) if nonce is None else nonce
    params = (
        f'({" ".join(components)});created={created};keyid="{key_id}";nonce="{nonce}";alg="{alg}"'
    )
    base = signature_base(method, url, params, digest).encode()
    signature = base64.b64encode(sign(base)).decode()
    headers["Signature-Input"] = f"{label}={params}"
    headers["Signature"] = f"{label}=:{signature}:"
    return headers


def hmac_sha256(secret: bytes) -> Callable[[bytes], bytes]:
    def sign(base: bytes) -> bytes:
        return hmac.new(secret, base, hashlib.sha256).digest()

    return sign
