"""A signed REST call to tickgate with an RFC 9421 library (docs/security.md, "Signed requests").

Signs with `http-message-signatures` (pyauth) and sends with `requests`
(`pip install -r requirements.txt`). The key comes from the environment:

    export TICKGATE_URL=http://127.0.0.1:8080
    export TICKGATE_KEY_ID=key_...                 # as printed by `tickgate keys create`
    export TICKGATE_HMAC_SECRET=tg_test_...         # an hmac key's secret, or
    export TICKGATE_ED25519_KEY=client.pem          # an ed25519 key's PEM private key file

    python signed_request.py GET '/v1/ticker?venue=sim&symbol=BTC-USDT'
    python signed_request.py POST /v1/ws-token '{}'

What the gateway requires, and how it is met here: the covered components `@method`,
`@authority`, `@path`, `@query` (when there is a query) and `content-digest` (when there is
a body: the library adds the RFC 9530 `Content-Digest: sha-256=...` header and covers it when
given `body=`); the parameters `created` (the library's default, now), `keyid` and a fresh
random `nonce`, which makes every signed request single-use.
"""

import os
import secrets
import sys
from urllib.parse import urlsplit

import requests
from http_message_signatures import HTTPMessageSigner, MappingKeyResolver, algorithms


def signer_from_env():
    """(signer, key_id) for the hmac or ed25519 key named by the environment."""
    key_id = os.environ["TICKGATE_KEY_ID"]
    if "TICKGATE_HMAC_SECRET" in os.environ:
        # The HMAC key is the secret's UTF-8 bytes, exactly as issued (tg_test_..., tg_live_...).
        algorithm, key = algorithms.HMAC_SHA256, os.environ["TICKGATE_HMAC_SECRET"].encode()
    else:
        with open(os.environ["TICKGATE_ED25519_KEY"], "rb") as pem:
            algorithm, key = algorithms.ED25519, pem.read()
    resolver = MappingKeyResolver(public_keys={}, private_keys={key_id: key})
    return HTTPMessageSigner(signature_algorithm=algorithm, key_resolver=resolver), key_id


def sign(request, signer, key_id):
    """Adds Content-Digest (if there is a body), Signature-Input and Signature to a
    `requests.PreparedRequest`, in place."""
    components = ["@method", "@authority", "@path"]
    if urlsplit(request.url).query:
        components.append("@query")
    body = request.body.encode() if isinstance(request.body, str) else request.body
    signer.sign(
        request,
        key_id=key_id,
        nonce=secrets.token_urlsafe(16),
        covered_component_ids=components,
        body=body or None,  # given a body, the library adds and covers content-digest
        label="sig1",
    )
    return request


def main(method, path, body=None):
    url = os.environ.get("TICKGATE_URL", "http://127.0.0.1:8080") + path
    headers = {"Content-Type": "application/json"} if body else {}
    request = requests.Request(method, url, data=body and body.encode(), headers=headers)
    signer, key_id = signer_from_env()
    response = requests.Session().send(sign(request.prepare(), signer, key_id))
    print(response.status_code, response.text)
    return 0 if response.ok else 1


if __name__ == "__main__":
    if len(sys.argv) not in (3, 4):
        sys.exit(__doc__)
    sys.exit(main(*sys.argv[1:]))
