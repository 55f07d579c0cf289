"""Interop test: requests signed by `signed_request.py` (the `http-message-signatures` library)
against a real gateway.

    python examples/python/interop_test.py PATH/TO/tickgate

Builds nothing: starts `PATH/TO/tickgate serve` on a free port with a temporary data
directory, creates an hmac and an ed25519 key offline, and for each key checks that a signed
GET with a query and a signed POST with a body are accepted, that the same request sent
again gets `nonce_reused`, and that a body changed after signing gets `digest_mismatch`.
Exits 1 on any failure; prints SKIPPED and exits 0 when the library is not installed
(`pip install -r examples/python/requirements.txt`).
"""

import json
import os
import re
import secrets
import subprocess
import sys
import tempfile
import time
from pathlib import Path

try:
    import requests
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
    from http_message_signatures import HTTPMessageSigner, MappingKeyResolver, algorithms

    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from signed_request import sign
except ImportError as error:
    print(f"SKIPPED python interop test: {error} (pip install -r examples/python/requirements.txt)")
    sys.exit(0)


def create_key(tickgate, data_dir, kind, public_key=None):
    cmd = [tickgate, "keys", "create", "--name", f"interop-{kind}", "--type", kind,
           "--scopes", "market:read,keys:admin", "--data-dir", data_dir, "--json"]
    if public_key:
        cmd += ["--public-key", public_key]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    return json.loads(out)


def start_gateway(tickgate, data_dir, log):
    server = subprocess.Popen(
        [tickgate, "serve", "--listen", "127.0.0.1:0", "--data-dir", data_dir],
        stdout=log, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        match = re.search(r"tickgate listening.*?(127\.0\.0\.1:\d+)", Path(log.name).read_text())
        if match:
            return server, f"http://{match.group(1)}"
        if server.poll() is not None:
            break
        time.sleep(0.1)
    server.kill()
    raise RuntimeError("the gateway did not start:\n" + Path(log.name).read_text())


def run_cases(base_url, label, signer, key_id):
    """One line per case: (what, expected status, expected code or None). Returns failures."""
    session = requests.Session()
    failures = 0

    def check(what, request, status, code=None):
        nonlocal failures
        response = session.send(request)
        try:
            got = None if response.ok else response.json().get("code")
        except ValueError:
            got = "(not JSON)"
        ok = response.status_code == status and got == code
        failures += not ok
        print(f"{'ok  ' if ok else 'FAIL'} {label:7} {what}: {response.status_code} {got or ''}"
              + ("" if ok else f" (expected {status} {code or ''}) {response.text[:300]}"))

    def signed(method, path, body=None):
        headers = {"Content-Type": "application/json"} if body else {}
        request = requests.Request(method, base_url + path, data=body, headers=headers).prepare()
        return sign(request, signer, key_id)

    get = signed("GET", "/v1/ticker?venue=sim&symbol=BTC-USDT")
    check("GET /v1/ticker?venue=sim&symbol=BTC-USDT", get, 200)
    check("the same GET again", get, 401, "nonce_reused")

    body = json.dumps({"name": f"made-by-{label}", "scopes": ["market:read"]}).encode()
    post = signed("POST", "/admin/v1/keys", body)
    check("POST /admin/v1/keys with a body", post, 201)
    check("the same POST again", post, 401, "nonce_reused")

    check("POST /v1/ws-token, empty body", signed("POST", "/v1/ws-token"), 200)

    tampered = signed("POST", "/admin/v1/keys", body)
    tampered.body = body.replace(b"market:read", b"keys:admin")
    tampered.headers["Content-Length"] = str(len(tampered.body))
    check("the body changed after signing", tampered, 401, "digest_mismatch")
    return failures


def main(tickgate):
    with tempfile.TemporaryDirectory(prefix="tickgate-interop-") as tmp:
        data_dir = os.path.join(tmp, "data")
        os.environ["TICKGATE_MASTER_KEY"] = secrets.token_hex(32)  # hmac secrets need one
        private = Ed25519PrivateKey.generate()
        public_pem = os.path.join(tmp, "client.pub.pem")
        Path(public_pem).write_bytes(private.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo))
        private_pem = private.private_bytes(serialization.Encoding.PEM,
                                            serialization.PrivateFormat.PKCS8,
                                            serialization.NoEncryption())
        hmac_key = create_key(tickgate, data_dir, "hmac")
        ed_key = create_key(tickgate, data_dir, "ed25519", public_pem)
        signers = [
            ("hmac", algorithms.HMAC_SHA256, hmac_key["id"], hmac_key["secret"].encode()),
            ("ed25519", algorithms.ED25519, ed_key["id"], private_pem),
        ]
        with open(os.path.join(tmp, "gateway.log"), "w+") as log:
            server, base_url = start_gateway(tickgate, data_dir, log)
            try:
                failures = 0
                for label, algorithm, key_id, key in signers:
                    resolver = MappingKeyResolver(public_keys={}, private_keys={key_id: key})
                    signer = HTTPMessageSigner(signature_algorithm=algorithm, key_resolver=resolver)
                    failures += run_cases(base_url, label, signer, key_id)
            finally:
                server.terminate()
                server.wait(timeout=15)
            if failures:
                print("gateway log (last 20 lines):", *Path(log.name).read_text().splitlines()[-20:],
                      sep="\n  ")
    print(f"python interop test: {'FAILED' if failures else 'passed'}"
          + (f" ({failures} failures)" if failures else ""))
    return 1 if failures else 0


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    sys.exit(main(sys.argv[1]))
