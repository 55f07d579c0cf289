"""The SDK's own RFC 9421 signer: reproduces the documented worked example byte for byte and is
accepted by an independent implementation (the ``http-message-signatures`` library)."""

import base64

import pytest
import requests
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from tickgate import Credentials, TickgateError
from tickgate.signing import authority, hmac_sha256, sign_request

hms = pytest.importorskip("http_message_signatures")

KEY_ID = "key_DocsExample0001"
SECRET = "tg_test_docs-example-secret-not-a-real-one"


def test_docs_worked_example_byte_for_byte() -> None:
    body = b'{"name":"bot","scopes":["market:read"]}'
    headers = sign_request(
        "POST",
        "http://gw.example:8080/admin/v1/keys",
        body,
        key_id=KEY_ID,
        alg="hmac-sha256",
        sign=hmac_sha256(SECRET.encode()),
        created=1764300000,
        nonce="q2Zf1cPbNl0Kd3Yx",
    )
    assert headers == {
        "Content-Digest": "sha-256=:mI2sLLH6lsol3w3ufs1JLXajYVjvB8M2oXWBxgK1Hw4=:",
        "Signature-Input": 'sig1=("@method" "@authority" "@path" "content-digest")'
        ';created=1764300000;keyid="key_DocsExample0001"'
        ';nonce="q2Zf1cPbNl0Kd3Yx";alg="hmac-sha256"',
        "Signature": "sig1=:WZW1z1/04WnI/E5cuyvWaYOumhqu+ArjqeC6+oxyuxs=:",
    }


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("http://GW.example:80/x", "gw.example"),
        ("http://gw.example:8080/x", "gw.example:8080"),
        ("https://gw.example:443/x", "gw.example"),
        ("ws://127.0.0.1:80/v1/ws", "127.0.0.1"),
        ("wss://gw.example:8443/v1/ws", "gw.example:8443"),
        ("http://[::1]:8080/", "[::1]:8080"),
    ],
)
def test_authority_drops_only_the_default_port(url: str, expected: str) -> None:
    assert authority(url) == expected


def verify(
    credentials: Credentials,
    key: object,
    algorithm: object,
    method: str,
    url: str,
    body: bytes | None,
) -> None:
    headers = credentials.headers(method, url, body)
    request = requests.Request(method, url, data=body, headers=headers).prepare()
    verifier = hms.HTTPMessageVerifier(
        signature_algorithm=algorithm,
        key_resolver=hms.MappingKeyResolver(public_keys={credentials.key_id: key}, private_keys={}),
    )
    results = verifier.verify(
        request, body=body, require_components=("@method", "@authority", "@path")
    )
    assert len(results) == 1
    covered = " ".join(str(c) for c in results[0].covered_components)
    assert ("@query" in covered) == ("?" in url)
    assert ("content-digest" in covered) == bool(body)


@pytest.mark.parametrize(
    ("method", "url", "body"),
    [
        ("GET", "http://127.0.0.1:8080/v1/ticker?venue=sim&symbol=BTC-USDT", None),
        ("POST", "http://127.0.0.1:8080/admin/v1/keys", b'{"name":"x"}'),
        ("GET", "https://gw.example/v1/trades?from=2026-01-01T00%3A00%3A00Z&limit=5", None),
    ],
)
def test_hmac_signatures_verify_with_an_independent_library(
    method: str, url: str, body: bytes | None
) -> None:
    credentials = Credentials.hmac(KEY_ID, SECRET)
    verify(credentials, SECRET.encode(), hms.algorithms.HMAC_SHA256, method, url, body)


@pytest.mark.parametrize(
    ("method", "url", "body"),
    [
        ("GET", "http://127.0.0.1:8080/v1/book?venue=sim&symbol=BTC-USDT&depth=5", None),
        ("POST", "http://127.0.0.1:8080/v1/ws-token", b"{}"),
    ],
)
def test_ed25519_signatures_verify_with_an_independent_library(
    method: str, url: str, body: bytes | None
) -> None:
    private = Ed25519PrivateKey.generate()
    pem = private.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    public = private.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    verify(Credentials.ed25519_pem(KEY_ID, pem), public, hms.algorithms.ED25519, method, url, body)
    seed = private.private_bytes(
        serialization.Encoding.Raw, serialization.PrivateFormat.Raw, serialization.NoEncryption()
    )
    verify(
        Credentials.ed25519_seed(KEY_ID, seed), public, hms.algorithms.ED25519, method, url, body
    )


def test_every_signature_is_fresh() -> None:
    credentials = Credentials.hmac(KEY_ID, SECRET)
    first = credentials.headers("GET", "http://127.0.0.1:8080/v1/instruments")
    second = credentials.headers("GET", "http://127.0.0.1:8080/v1/instruments")
    assert first["Signature-Input"] != second["Signature-Input"]  # a new nonce each time
    assert "content-digest" not in first["Signature-Input"]


def test_a_tampered_signature_fails_the_independent_verifier() -> None:
    credentials = Credentials.hmac(KEY_ID, SECRET)
    url = "http://127.0.0.1:8080/v1/instruments"
    headers = credentials.headers("GET", url)
    mac = base64.b64decode(headers["Signature"].split(":")[1])
    headers["Signature"] = "sig1=:" + base64.b64encode(bytes([mac[0] ^ 1]) + mac[1:]).decode() + ":"
    request = requests.Request("GET", url, headers=headers).prepare()
    verifier = hms.HTTPMessageVerifier(
        signature_algorithm=hms.algorithms.HMAC_SHA256,
        key_resolver=hms.MappingKeyResolver(public_keys={KEY_ID: SECRET.encode()}, private_keys={}),
    )
    with pytest.raises(hms.InvalidSignature):
        verifier.verify(request)


def test_credentials_never_show_secrets() -> None:
    hmac = Credentials.hmac(KEY_ID, SECRET)
    bearer = Credentials.bearer(SECRET)
    for credentials in (hmac, bearer):
        assert SECRET not in repr(credentials) and SECRET not in str(credentials)
    assert "REDACTED" in repr(hmac) and KEY_ID in repr(hmac)
    assert Credentials.bearer(SECRET) != bearer  # never compared by secret


@pytest.mark.parametrize(
    "call",
    [
        lambda: Credentials.hmac("nope", SECRET),
        lambda: Credentials.hmac(KEY_ID, "not-a-secret"),
        lambda: Credentials.hmac(KEY_ID, "tg_test_short"),
        lambda: Credentials.bearer("Bearer tg_test_xxxxxxxxxxxxxxxx"),
        lambda: Credentials.ed25519_pem(KEY_ID, b"-----BEGIN PRIVATE KEY-----\nAAAA\n"),
        lambda: Credentials.ed25519_seed(KEY_ID, b"short"),
    ],
)
def test_bad_credentials_are_refused_without_echoing(call: object) -> None:
    with pytest.raises(TickgateError) as error:
        call()  # type: ignore[operator]
    assert error.value.code == "invalid_credentials"
    assert "not-a-secret" not in str(error.value) and "AAAA" not in str(error.value)


def test_an_rsa_pem_is_not_an_ed25519_key() -> None:
    from cryptography.hazmat.primitives.asymmetric import ec

    other = ec.generate_private_key(ec.SECP256R1()).private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    with pytest.raises(TickgateError) as error:
        Credentials.ed25519_pem(KEY_ID, other)
    assert error.value.code == "invalid_credentials"
