"""A tickgate webhook receiver that verifies every delivery with the `standardwebhooks` package.

    pip install -r examples/alerts/requirements.txt
    export WEBHOOK_SECRET=whsec_...     # shown once by POST /v1/webhooks (or rotate-secret)
    python examples/alerts/webhook_receiver.py 8000

Then create the endpoint with `{"url": "http://<this host>:8000/tickgate"}` (docs/alerts.md).

What it does with a delivery (a POST with `webhook-id`, `webhook-timestamp` and
`webhook-signature` headers and the JSON body):

- **Forged or altered** (no `v1` signature matches the body): 401, not processed.
- **Stale** (its timestamp more than 5 minutes from now, which is how the library bounds the
  window a captured request can be replayed in): 400, not processed.
- **Replayed** (a `webhook-id` already processed: an attacker resending a captured request
  inside the 5 minutes, or tickgate redelivering after it could not record our answer):
  200, but **not processed again**. Answering 2xx stops tickgate from retrying; the id is
  the same on every retry and redelivery of one alert, so de-duplicating by id is exactly
  once processing on top of at-least-once delivery.
- Otherwise: processed (printed), 200.

During a secret rotation tickgate signs with both secrets; pass the new one and the old one
(`WEBHOOK_SECRET=whsec_new,whsec_old`) to accept either.
"""

import json
import os
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from standardwebhooks import Webhook
from standardwebhooks.webhooks import WebhookVerificationError

#: How many processed ids to remember (older ones are beyond the 5-minute window anyway
#: once the receiver has run a while; size it to 5 minutes of alerts).
SEEN_LIMIT = 100_000


class Receiver:
    """Verification and de-duplication, independent of the HTTP server."""

    def __init__(self, secrets, on_alert=None):
        self.webhooks = [Webhook(s) for s in secrets]
        self.on_alert = on_alert or (lambda payload: print(json.dumps(payload), flush=True))
        self.seen = {}  # webhook-id -> insertion order, bounded by SEEN_LIMIT
        self.lock = threading.Lock()
        self.processed, self.duplicates, self.rejected = [], 0, []

    def handle(self, headers, body):
        """Returns (status, reply) for one delivery."""
        payload, last_error = None, "no secret"
        for webhook in self.webhooks:
            try:
                payload = webhook.verify(body, headers)
                break
            except WebhookVerificationError as error:
                last_error = str(error)
        if payload is None:
            status = 400 if "timestamp" in last_error.lower() else 401
            with self.lock:
                self.rejected.append((status, last_error))
            return status, {"error": last_error}
        msg_id = {k.lower(): v for k, v in headers.items()}["webhook-id"]
        with self.lock:
            if msg_id in self.seen:
                self.duplicates += 1
                return 200, {"duplicate": True}
            self.seen[msg_id] = len(self.seen)
            if len(self.seen) > SEEN_LIMIT:
                self.seen.pop(next(iter(self.seen)))
            self.processed.append(payload)
        self.on_alert(payload)
        return 200, {"ok": True}


def serve(receiver, port, host="127.0.0.1"):
    """An HTTP server handing every POST to `receiver`; returns it (call serve_forever)."""

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):
            body = self.rfile.read(int(self.headers.get("content-length", 0)))
            status, reply = receiver.handle(dict(self.headers), body)
            data = json.dumps(reply).encode()
            self.send_response(status)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args):  # quiet: the alerts are the output
            pass

    return ThreadingHTTPServer((host, port), Handler)


def main(port):
    secrets = [s for s in os.environ.get("WEBHOOK_SECRET", "").split(",") if s]
    if not secrets:
        sys.exit("set WEBHOOK_SECRET to the endpoint's whsec_ secret")
    server = serve(Receiver(secrets), port, host="0.0.0.0")
    print(f"listening on :{server.server_address[1]}", file=sys.stderr)
    server.serve_forever()


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    main(int(sys.argv[1]))
