"""CI test: alerts from a real gateway, verified by the independent `standardwebhooks` package.

    python examples/alerts/ci_test.py PATH/TO/tickgate

Starts `PATH/TO/tickgate serve` on a free port (simulated market, a temporary data directory,
a config that allow-lists 127.0.0.1 for webhooks), runs `webhook_receiver.py`'s receiver on
another port, creates a webhook endpoint and price rules at the market's current price through
the signed REST API (an ed25519 key made with `tickgate keys create`, signed by
`examples/python/signed_request.py`), and checks:

- deliveries arrive and verify with the endpoint's `whsec_` secret (the library checks the
  `v1` signature and the timestamp), each firing once;
- a captured delivery sent again verbatim is a replay: answered 200 but not processed again;
- the same delivery re-signed with a timestamp 10 minutes old is stale: refused (400);
- a delivery whose body was changed is refused (401);
- the endpoint's statistics show the deliveries;
- restart with pending deliveries: while the receiver answers 503, new firings are written and
  attempted; the gateway is killed with SIGKILL and started again on the same data directory;
  once the receiver is back every firing recorded before the kill is delivered, and every
  repeated delivery of a firing carries that firing's `webhook-id` (at-least-once, never a new
  id for the same firing).

Exits 1 on any failure; prints SKIPPED and exits 0 when a library is not installed.
"""

import json
import os
import re
import secrets
import subprocess
import sys
import tempfile
import threading
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

HERE = Path(__file__).resolve().parent
try:
    import requests
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
    from http_message_signatures import HTTPMessageSigner, MappingKeyResolver, algorithms
    from standardwebhooks import Webhook

    sys.path.insert(0, str(HERE))
    sys.path.insert(0, str(HERE.parent / "python"))
    from signed_request import sign
    from webhook_receiver import Receiver, serve
except ImportError as error:
    print(f"SKIPPED alerts webhook test: {error} "
          "(pip install -r examples/python/requirements.txt -r examples/alerts/requirements.txt)")
    sys.exit(0)

CONFIG = """
[alerts.delivery]
allow_addresses = ["127.0.0.1"]
retry_base_secs = 1
retry_max_delay_secs = 2
max_attempts = 100

[[venues]]
name = "sim"
symbols = ["BTC-USDT"]

[venues.sim]
rate = 200.0
"""


def start_gateway(tickgate, data_dir, config, log):
    log.flush()
    start = Path(log.name).stat().st_size  # a restart appends to the same log
    server = subprocess.Popen(
        [tickgate, "serve", "--config", config, "--listen", "127.0.0.1:0", "--data-dir", data_dir],
        stdout=log, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        match = re.search(r"tickgate listening.*?(127\.0\.0\.1:\d+)", Path(log.name).read_text()[start:])
        if match:
            return server, f"http://{match.group(1)}"
        if server.poll() is not None:
            break
        time.sleep(0.1)
    server.kill()
    raise RuntimeError("the gateway did not start:\n" + Path(log.name).read_text())


class Api:
    def __init__(self, base_url, signer, key_id):
        self.base_url, self.signer, self.key_id = base_url, signer, key_id
        self.session = requests.Session()

    def call(self, method, path, body=None):
        data = json.dumps(body).encode() if body is not None else None
        headers = {"Content-Type": "application/json"} if data else {}
        request = requests.Request(method, self.base_url + path, data=data, headers=headers).prepare()
        response = self.session.send(sign(request, self.signer, self.key_id))
        return response.status_code, (response.json() if response.content else None)


def main(tickgate):
    failures = []

    def check(what, ok, detail=""):
        print(f"{'ok  ' if ok else 'FAIL'} {what}" + ("" if ok else f": {detail}"))
        if not ok:
            failures.append(what)

    with tempfile.TemporaryDirectory(prefix="tickgate-alerts-") as tmp:
        data_dir = os.path.join(tmp, "data")
        os.environ["TICKGATE_MASTER_KEY"] = secrets.token_hex(32)  # webhook secrets are sealed
        private = Ed25519PrivateKey.generate()
        public_pem = os.path.join(tmp, "client.pub.pem")
        Path(public_pem).write_bytes(private.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo))
        key = json.loads(subprocess.run(
            [tickgate, "keys", "create", "--name", "alerts-ci", "--type", "ed25519",
             "--public-key", public_pem, "--scopes", "alerts:write,market:read",
             "--principal", "acme", "--data-dir", data_dir, "--json"],
            check=True, capture_output=True, text=True).stdout)
        pem = private.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                    serialization.NoEncryption())
        signer = HTTPMessageSigner(
            signature_algorithm=algorithms.ED25519,
            key_resolver=MappingKeyResolver(public_keys={}, private_keys={key["id"]: pem}))
        config = os.path.join(tmp, "tickgate.toml")
        Path(config).write_text(CONFIG)

        captured = []
        receiver = Receiver([], on_alert=lambda payload: None)
        original = receiver.handle
        down = threading.Event()  # set: the receiver answers 503 without looking

        def recording(headers, body):
            captured.append((dict(headers), body))
            if down.is_set():
                return 503, {"error": "down for the test"}
            return original(headers, body)

        receiver.handle = recording
        http = serve(receiver, 0)
        threading.Thread(target=http.serve_forever, daemon=True).start()
        receiver_url = f"http://127.0.0.1:{http.server_address[1]}/tickgate"

        with open(os.path.join(tmp, "gateway.log"), "w+") as log:
            gateway, base_url = start_gateway(tickgate, data_dir, config, log)
            try:
                api = Api(base_url, signer, key["id"])
                status, endpoint = api.call("POST", "/v1/webhooks", {"url": receiver_url})
                check("POST /v1/webhooks", status == 201, endpoint)
                secret = endpoint["secret"]
                receiver.webhooks = [Webhook(secret)]
                ticker = requests.get(base_url + "/v1/ticker?venue=sim&symbol=BTC-USDT").json()
                # Rules at the current price, both ways, until deliveries arrive.
                deadline = time.monotonic() + 90
                while len(receiver.processed) < 2 and time.monotonic() < deadline:
                    level = requests.get(base_url + "/v1/ticker?venue=sim&symbol=BTC-USDT").json()
                    level = level["ticker"]["last"] or ticker["ticker"]["last"]
                    for direction in ("above", "below"):
                        status, rule = api.call("POST", "/v1/alerts", {
                            "name": f"ci {direction} {level}", "endpoints": [endpoint["id"]],
                            "max_firings": 1,
                            "condition": {"kind": "price", "channel": "trades:sim:BTC-USDT",
                                          "direction": direction, "level": level}})
                        if status != 201:
                            check("POST /v1/alerts", False, rule)
                    time.sleep(3)
                check("deliveries arrived and verified", len(receiver.processed) >= 2,
                      f"{len(receiver.processed)} processed, rejected: {receiver.rejected}")
                ids = [p["data"]["id"] for p in receiver.processed]
                check("each firing processed once", len(ids) == len(set(ids)), ids)
                check("nothing genuine was rejected", not receiver.rejected, receiver.rejected)
                first = receiver.processed[0]["data"] if receiver.processed else {}
                check("the payload is an alert", receiver.processed
                      and receiver.processed[0]["type"] == "alert.fired"
                      and first.get("rule_id", "").startswith("alr_"), first)

                headers, body = captured[0]
                done = len(receiver.processed)
                status, reply = receiver.handle(headers, body)
                check("a verbatim replay is not processed again",
                      status == 200 and reply.get("duplicate") and len(receiver.processed) == done,
                      (status, reply))
                old = datetime.now(tz=timezone.utc) - timedelta(minutes=10)
                lower = {k.lower(): v for k, v in headers.items()}
                stale = dict(lower, **{
                    "webhook-timestamp": str(int(old.timestamp())),
                    "webhook-signature": Webhook(secret).sign(lower["webhook-id"], old, body.decode())})
                status, reply = receiver.handle(stale, body)
                check("a stale delivery is refused", status == 400, (status, reply))
                tampered = body.replace(b'"firing":1', b'"firing":2')
                status, reply = receiver.handle(headers, tampered)
                check("an altered body is refused", status == 401 and tampered != body, (status, reply))

                status, shown = api.call("GET", f"/v1/webhooks/{endpoint['id']}")
                check("endpoint statistics", status == 200 and shown["stats"]["delivered"] >= 2
                      and shown["stats"]["last_status"] == 200, shown)
                status, metrics = 0, requests.get(base_url + "/metrics").text
                check("webhook metrics", re.search(r"tickgate_webhook_delivered_total [1-9]", metrics)
                      is not None, "no delivered counter")

                # Restart with pending deliveries: the receiver is down, firings pile up.
                down.set()
                status, listed = api.call("GET", "/v1/alerts/firings")
                known = {f["id"] for f in listed["firings"]} if status == 200 else set()
                pending, deadline = set(), time.monotonic() + 90
                while len(pending) < 2 and time.monotonic() < deadline:
                    level = requests.get(base_url + "/v1/ticker?venue=sim&symbol=BTC-USDT").json()
                    level = level["ticker"]["last"] or ticker["ticker"]["last"]
                    for direction in ("above", "below"):
                        api.call("POST", "/v1/alerts", {
                            "name": f"kill {direction} {level}", "endpoints": [endpoint["id"]],
                            "max_firings": 1,
                            "condition": {"kind": "price", "channel": "trades:sim:BTC-USDT",
                                          "direction": direction, "level": level}})
                    time.sleep(3)
                    status, listed = api.call("GET", "/v1/alerts/firings")
                    pending = {f["id"] for f in listed["firings"]} - known if status == 200 else set()
                attempted = {{k.lower(): v for k, v in h.items()}["webhook-id"] for h, _ in captured}
                check("firings written while the receiver is down", len(pending) >= 2, pending)
                check("pending firings were attempted (503)", pending & attempted, (pending, attempted))
                gateway.kill()  # SIGKILL: no shutdown path runs
                gateway.wait(timeout=15)
                down.clear()
                gateway, base_url = start_gateway(tickgate, data_dir, config, log)
                delivered = lambda: {p["data"]["id"] for p in receiver.processed}
                deadline = time.monotonic() + 60
                while not pending <= delivered() and time.monotonic() < deadline:
                    time.sleep(0.5)
                check("every firing recorded before the kill is delivered after the restart",
                      pending <= delivered(), (pending, delivered()))
                ids_by_firing = {}
                for h, body in captured:
                    firing_id = json.loads(body)["data"]["id"]
                    ids_by_firing.setdefault(firing_id, set()).add(
                        {k.lower(): v for k, v in h.items()}["webhook-id"])
                check("a firing's deliveries all carry its webhook-id",
                      all(ids == {fid} for fid, ids in ids_by_firing.items()), ids_by_firing)
                check("each firing processed once across the restart",
                      len(receiver.processed) == len(delivered()), len(receiver.processed))
            finally:
                gateway.terminate()
                gateway.wait(timeout=15)
                http.shutdown()
            if failures:
                print("gateway log (last 20 lines):", *Path(log.name).read_text().splitlines()[-20:],
                      sep="\n  ")
    print(f"alerts webhook test: {'FAILED' if failures else 'passed'}"
          + (f" ({len(failures)} failures)" if failures else ""))
    return 1 if failures else 0


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    sys.exit(main(sys.argv[1]))
