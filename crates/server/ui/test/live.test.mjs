// The page's JS modules against a running gateway (started by .ci/dashboard.sh):
// - the book mirror verifies every book message of every channel, and /v1/book checksums;
// - requests signed by js/sign.js (ed25519 and hmac) are accepted by the admin API, a replay
//   is refused with nonce_reused, a body changed after signing with digest_mismatch;
// - the live audit log's chain verifies with js/audit.js, and a changed entry does not.
//
// It starts its own gateway from TICKGATE_BIN (test/harness.mjs), or uses TICKGATE_URL
// (http://127.0.0.1:PORT) with TICKGATE_VIEWER_TOKEN (a bearer key with market:read),
// TICKGATE_ED25519_KEY_ID + TICKGATE_ED25519_PEM (a keys:admin ed25519 key and its PKCS#8
// file) and TICKGATE_HMAC_KEY_ID + TICKGATE_HMAC_SECRET (a keys:admin hmac key).
// Node 20 needs --experimental-websocket for the WebSocket global.

import { after, test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { BookMirror, checksumOf } from "../js/book.js";
import { importSigningKey, signRequest } from "../js/sign.js";
import { verifyTail } from "../js/audit.js";

import { makeDeployment, startGateway } from "./harness.mjs";

// A gateway of our own (TICKGATE_BIN), or the one TICKGATE_URL names with its keys in the
// environment (see the header).
let base;
let keys;
let gateway = null;
if (process.env.TICKGATE_URL) {
  const env = (name) => {
    const value = process.env[name];
    if (!value) throw new Error(`${name} is not set`);
    return value;
  };
  base = process.env.TICKGATE_URL;
  keys = {
    viewer: env("TICKGATE_VIEWER_TOKEN"),
    ed25519: { id: env("TICKGATE_ED25519_KEY_ID"), material: readFileSync(env("TICKGATE_ED25519_PEM"), "utf8") },
    hmac: { id: env("TICKGATE_HMAC_KEY_ID"), material: env("TICKGATE_HMAC_SECRET") },
  };
} else {
  const deployment = makeDeployment();
  gateway = await startGateway(deployment, { required: true });
  base = gateway.url;
  keys = {
    viewer: deployment.viewer.token,
    ed25519: { id: deployment.ops.id, material: deployment.ops.pem },
    hmac: { id: deployment.hmac.id, material: deployment.hmac.secret },
  };
  after(async () => {
    await gateway.stop();
    deployment.remove();
  });
}
const authority = new URL(base).host;
const viewer = { Authorization: `Bearer ${keys.viewer}` };

async function json(path, init = {}) {
  const response = await fetch(base + path, init);
  return { status: response.status, body: await response.json().catch(() => null) };
}

async function admin(kind, method, path, { query = null, body = null } = {}) {
  const { id: keyId, material } = keys[kind];
  const key = await importSigningKey(kind, material);
  const headers = await signRequest({ method, authority, path, query, body, keyId, kind, key });
  if (body !== null) headers["Content-Type"] = "application/json";
  return { headers, url: base + path + (query ? `?${query}` : "") };
}

test("the JS book mirror verifies every message of every book channel", async () => {
  const { body } = await json("/v1/instruments", { headers: viewer });
  const symbols = [...new Set(body.instruments.map((i) => i.symbol))];
  const channels = [...body.instruments.map((i) => `book:${i.venue}:${i.symbol}`), ...symbols.map((s) => `book:all:${s}`)];
  const token = await json("/v1/ws-token", { method: "POST", headers: viewer });
  assert.equal(token.status, 200);
  const ws = new WebSocket(`${base.replace("http", "ws")}/v1/ws?token=${token.body.token}`);
  const mirrors = new Map(channels.map((c) => [c, new BookMirror(c)]));
  let verified = 0;
  await new Promise((resolve, reject) => {
    ws.onopen = () => ws.send(JSON.stringify({ op: "subscribe", id: 1, channels }));
    ws.onerror = () => reject(new Error("websocket error"));
    ws.onmessage = (event) => {
      const msg = JSON.parse(event.data);
      const mirror = mirrors.get(msg.channel);
      if (!mirror) return;
      try {
        if (mirror.handle(msg) && typeof msg.checksum === "number") verified++;
      } catch (error) {
        reject(error);
      }
    };
    setTimeout(resolve, 4000);
  });
  ws.close();
  assert.ok(verified >= 20, `only ${verified} book messages verified`);
  for (const [channel, mirror] of mirrors) assert.ok(mirror.live, `${channel} never got a snapshot`);
});

test("GET /v1/book checksums are the JS checksum of the levels", async () => {
  const { body } = await json("/v1/instruments", { headers: viewer });
  const venues = body.instruments.map((i) => [i.venue, i.symbol]);
  venues.push(...[...new Set(body.instruments.map((i) => i.symbol))].map((s) => ["all", s]));
  for (const [venue, symbol] of venues) {
    const book = await json(`/v1/book?venue=${venue}&symbol=${symbol}&depth=5000`, { headers: viewer });
    assert.equal(book.status, 200, `${venue} ${symbol}: ${JSON.stringify(book.body)}`);
    const lv = ([price, size]) => ({ price, size });
    assert.equal(checksumOf(book.body.bids.map(lv), book.body.asks.map(lv)), book.body.checksum, `${venue} ${symbol}`);
  }
});

for (const kind of ["ed25519", "hmac"]) {
  test(`${kind}: the admin API accepts what js/sign.js signs, and refuses its replay`, async () => {
    const list = await admin(kind, "GET", "/admin/v1/keys", { query: "limit=10" });
    const ok = await fetch(list.url, { headers: list.headers });
    assert.equal(ok.status, 200, await ok.text());
    const replay = await fetch(list.url, { headers: list.headers });
    assert.equal(replay.status, 401);
    assert.equal((await replay.json()).code, "nonce_reused");

    const body = JSON.stringify({ name: `made-by-js-${kind}`, scopes: ["market:read"] });
    const create = await admin(kind, "POST", "/admin/v1/keys", { body });
    const created = await fetch(create.url, { method: "POST", headers: create.headers, body });
    assert.equal(created.status, 201, await created.text());
    const changed = await admin(kind, "POST", "/admin/v1/keys", { body });
    const tampered = await fetch(changed.url, { method: "POST", headers: changed.headers, body: body.replace("market:read", "keys:admin") });
    assert.equal(tampered.status, 401);
    assert.equal((await tampered.json()).code, "digest_mismatch");
  });
}

test("the live audit log verifies in JS, and a changed entry is caught", async () => {
  const signed = await admin("ed25519", "GET", "/admin/v1/audit", { query: "limit=1000" });
  const response = await fetch(signed.url, { headers: signed.headers });
  assert.equal(response.status, 200);
  const page = await response.json();
  assert.ok(page.entries.length >= 3, `only ${page.entries.length} audit entries`);
  assert.deepEqual(await verifyTail(page.entries, page.head), { ok: true, verified: page.entries.length });
  // A tail (not starting at 1) verifies from its first entry on.
  assert.equal((await verifyTail(page.entries.slice(1), page.head)).ok, true);
  const edited = structuredClone(page.entries);
  edited[1].detail = edited[1].detail.replace("}", ',"x":1}');
  assert.deepEqual(await verifyTail(edited, page.head), { ok: false, seq: edited[1].seq, reason: "altered: its hash does not match its content" });
  if (process.env.TICKGATE_AUDIT_FIXTURE) {
    const { writeFileSync } = await import("node:fs");
    writeFileSync(process.env.TICKGATE_AUDIT_FIXTURE, JSON.stringify(page, null, 1) + "\n");
  }
});
