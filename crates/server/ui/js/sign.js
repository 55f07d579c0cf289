// RFC 9421 HTTP Message Signatures made in the browser with WebCrypto, exactly as the gateway
// verifies them (docs/security.md, "The scheme"): components @method, @authority, @path,
// @query (when the URL has a query) and content-digest (when there is a body); parameters
// created, keyid, nonce and alg; one label, sig1.
//
// The operator's key is imported as a non-extractable CryptoKey: script can use it to sign but
// can never read it back, and it lives only in this page's memory.

const encoder = new TextEncoder();

function base64(bytes) {
  let text = "";
  for (const b of new Uint8Array(bytes)) text += String.fromCharCode(b);
  return btoa(text);
}

function unbase64(text) {
  const raw = atob(text);
  const out = new Uint8Array(raw.length);
  for (let i = 0; i < raw.length; i++) out[i] = raw.charCodeAt(i);
  return out;
}

/** The algorithm names of the two key types. */
export const ALGORITHMS = { hmac: "hmac-sha256", ed25519: "ed25519" };

/**
 * Imports a signing key for `kind` (`hmac` or `ed25519`) from what the operator pasted: an
 * hmac key's secret exactly as issued (its UTF-8 bytes are the HMAC key), or an Ed25519
 * PKCS#8 private key in PEM (`-----BEGIN PRIVATE KEY-----`). Returns a non-extractable
 * CryptoKey. Throws an Error with a message safe to show (never the key).
 */
export async function importSigningKey(kind, text, subtle = globalThis.crypto.subtle) {
  if (kind === "hmac") {
    const secret = text.trim();
    if (!secret) throw new Error("paste the hmac key's secret");
    return subtle.importKey("raw", encoder.encode(secret), { name: "HMAC", hash: "SHA-256" }, false, [
      "sign",
    ]);
  }
  if (kind === "ed25519") {
    const m = /-----BEGIN PRIVATE KEY-----([\s\S]+?)-----END PRIVATE KEY-----/.exec(text);
    if (!m) throw new Error("paste a PKCS#8 PEM private key (-----BEGIN PRIVATE KEY-----)");
    let der;
    try {
      der = unbase64(m[1].replace(/\s+/g, ""));
    } catch {
      throw new Error("the PEM block is not base64");
    }
    try {
      return await subtle.importKey("pkcs8", der, { name: "Ed25519" }, false, ["sign"]);
    } catch {
      throw new Error("not an Ed25519 PKCS#8 private key");
    }
  }
  throw new Error(`unknown key type ${kind}: hmac or ed25519`);
}

/** `Content-Digest` of a body (RFC 9530, sha-256). */
export async function contentDigest(body, subtle = globalThis.crypto.subtle) {
  return `sha-256=:${base64(await subtle.digest("SHA-256", body))}:`;
}

function sfString(value, what) {
  if (!/^[\x20-\x7e]*$/.test(value)) throw new Error(`${what} must be printable ASCII`);
  return `"${value.replace(/[\\"]/g, (c) => "\\" + c)}"`;
}

/** A random nonce: 16 bytes, base64url (22 characters). */
export function randomNonce() {
  const bytes = globalThis.crypto.getRandomValues(new Uint8Array(16));
  return base64(bytes).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
}

/**
 * The signature base and the Signature-Input value of a request (pure; no key involved).
 * `authority` is the Host the browser sends (`location.host`), `query` the text after `?`
 * or null, `digest` the Content-Digest value or null.
 */
export function signatureBase({ method, authority, path, query, digest, keyId, created, nonce, alg }) {
  const components = [
    ["@method", method.toUpperCase()],
    ["@authority", authority.toLowerCase()],
    ["@path", path],
  ];
  if (query !== null && query !== undefined) components.push(["@query", `?${query}`]);
  if (digest) components.push(["content-digest", digest]);
  const list = components.map(([name]) => `"${name}"`).join(" ");
  const params =
    `(${list});created=${created};keyid=${sfString(keyId, "keyid")}` +
    `;nonce=${sfString(nonce, "nonce")};alg=${sfString(alg, "alg")}`;
  const lines = components.map(([name, value]) => `"${name}": ${value}`);
  lines.push(`"@signature-params": ${params}`);
  return { base: lines.join("\n"), signatureInput: `sig1=${params}` };
}

/**
 * The headers that sign a request: `Signature-Input`, `Signature`, and `Content-Digest` when
 * `body` (a Uint8Array or string) is given. `created` (Unix seconds) and `nonce` default to
 * now and a fresh random nonce.
 */
export async function signRequest({
  method,
  authority,
  path,
  query = null,
  body = null,
  keyId,
  kind,
  key,
  created = Math.floor(Date.now() / 1000),
  nonce = randomNonce(),
  subtle = globalThis.crypto.subtle,
}) {
  const alg = ALGORITHMS[kind];
  if (!alg) throw new Error(`unknown key type ${kind}`);
  const bytes = typeof body === "string" ? encoder.encode(body) : body;
  const headers = {};
  let digest = null;
  if (bytes && bytes.length > 0) {
    digest = await contentDigest(bytes, subtle);
    headers["Content-Digest"] = digest;
  }
  const { base, signatureInput } = signatureBase({
    method,
    authority,
    path,
    query,
    digest,
    keyId,
    created,
    nonce,
    alg,
  });
  const algorithm = kind === "hmac" ? { name: "HMAC" } : { name: "Ed25519" };
  const signature = await subtle.sign(algorithm, key, encoder.encode(base));
  headers["Signature-Input"] = signatureInput;
  headers["Signature"] = `sig1=:${base64(signature)}:`;
  return headers;
}
