// The page's RFC 9421 signer against the gateway's own vectors: the worked example of
// docs/security.md (the Rust signer reproduces it in httpsig::sign::tests::docs_worked_example,
// and the gateway verifies it) and RFC 9421 B.2.6 for Ed25519. test/live.mjs then has a
// running gateway accept what the signer makes.
import { test } from "node:test";
import assert from "node:assert/strict";
import { importSigningKey, signRequest, signatureBase, contentDigest } from "../../js/sign.js";

const encoder = new TextEncoder();

test("the docs/security.md worked example, byte for byte", async () => {
  const body = '{"name":"bot","scopes":["market:read"]}';
  const key = await importSigningKey("hmac", "tg_test_docs-example-secret-not-a-real-one");
  const headers = await signRequest({
    method: "POST",
    authority: "gw.example:8080",
    path: "/admin/v1/keys",
    body,
    keyId: "key_DocsExample0001",
    kind: "hmac",
    key,
    created: 1764300000,
    nonce: "q2Zf1cPbNl0Kd3Yx",
  });
  assert.deepEqual(headers, {
    "Content-Digest": "sha-256=:mI2sLLH6lsol3w3ufs1JLXajYVjvB8M2oXWBxgK1Hw4=:",
    "Signature-Input":
      'sig1=("@method" "@authority" "@path" "content-digest");created=1764300000;keyid="key_DocsExample0001";nonce="q2Zf1cPbNl0Kd3Yx";alg="hmac-sha256"',
    Signature: "sig1=:WZW1z1/04WnI/E5cuyvWaYOumhqu+ArjqeC6+oxyuxs=:",
  });
});

test("the base: @query when there is one, no digest without a body, authority lower case", () => {
  const { base, signatureInput } = signatureBase({
    method: "get",
    authority: "GW.Example:8080",
    path: "/admin/v1/keys/key_x/usage",
    query: "granularity=minute",
    digest: null,
    keyId: "key_x",
    created: 1,
    nonce: "n",
    alg: "ed25519",
  });
  assert.equal(
    base,
    [
      '"@method": GET',
      '"@authority": gw.example:8080',
      '"@path": /admin/v1/keys/key_x/usage',
      '"@query": ?granularity=minute',
      '"@signature-params": ("@method" "@authority" "@path" "@query");created=1;keyid="key_x";nonce="n";alg="ed25519"',
    ].join("\n"),
  );
  assert.equal(signatureInput, 'sig1=("@method" "@authority" "@path" "@query");created=1;keyid="key_x";nonce="n";alg="ed25519"');
});

test("sf-strings are escaped, and non-ASCII parameters refused", () => {
  const p = { method: "GET", authority: "h", path: "/", query: null, digest: null, created: 1, alg: "ed25519" };
  assert.match(signatureBase({ ...p, keyId: 'a"b\\c', nonce: "n" }).signatureInput, /keyid="a\\"b\\\\c"/);
  assert.throws(() => signatureBase({ ...p, keyId: "k", nonce: "né" }), /printable ASCII/);
});

test("Ed25519: RFC 9421 B.2.6 signature from the RFC's PKCS#8 key", async () => {
  const pem = "-----BEGIN PRIVATE KEY-----\nMC4CAQAwBQYDK2VwBCIEIJ+DYvh6SEqVTm50DFtMDoQikTmiCqirVv9mWG9qfSnF\n-----END PRIVATE KEY-----\n";
  const key = await importSigningKey("ed25519", pem);
  assert.equal(key.extractable, false);
  const base = [
    '"date": Tue, 20 Apr 2021 02:07:55 GMT',
    '"@method": POST',
    '"@path": /foo',
    '"@authority": example.com',
    '"content-type": application/json',
    '"content-length": 18',
    '"@signature-params": ("date" "@method" "@path" "@authority" "content-type" "content-length");created=1618884473;keyid="test-key-ed25519"',
  ].join("\n");
  const signature = await crypto.subtle.sign({ name: "Ed25519" }, key, encoder.encode(base));
  assert.equal(
    Buffer.from(signature).toString("base64"),
    "wqcAqbmYJ2ji2glfAMaRy4gruYYnx2nEFN2HN6jrnDnQCK1u02Gb04v9EDgwUPiu4A0w6vuQv5lIp5WPpBKRCw==",
  );
});

test("imported keys cannot be read back, and bad input is refused with a plain message", async () => {
  const key = await importSigningKey("hmac", "tg_test_secret");
  assert.equal(key.extractable, false);
  await assert.rejects(crypto.subtle.exportKey("raw", key));
  const cases = [
    ["hmac", "  ", /paste the hmac key's secret/],
    ["ed25519", "not a pem", /PKCS#8 PEM/],
    ["ed25519", "-----BEGIN PRIVATE KEY-----\n!!!\n-----END PRIVATE KEY-----", /base64|Ed25519/],
    ["ed25519", "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----", /not an Ed25519/],
    ["rsa", "x", /unknown key type/],
  ];
  for (const [kind, text, want] of cases) {
    await assert.rejects(importSigningKey(kind, text), (e) => want.test(e.message) && !e.message.includes(text.trim() || "\u0000"), `${kind} ${text}`);
  }
});

test("Content-Digest of the empty body and of bytes", async () => {
  assert.equal(await contentDigest(new Uint8Array()), "sha-256=:47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=:");
  assert.equal(await contentDigest(encoder.encode('{"name":"bot","scopes":["market:read"]}')), "sha-256=:mI2sLLH6lsol3w3ufs1JLXajYVjvB8M2oXWBxgK1Hw4=:");
});
