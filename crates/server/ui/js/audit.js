// Verifies a run of audit log entries (GET /admin/v1/audit) in the browser, exactly as
// crates/store/src/audit.rs chains them:
//   hash = SHA-256("tickgate-audit-v1" ‖ prev_hash ‖ seq (u64 BE) ‖ at (i64 BE) ‖
//                  len‖actor ‖ len‖action ‖ len‖key_id (or "\0") ‖ len‖detail)
// with lengths as u64 BE byte counts and prev_hash the previous entry's hash (32 zero bytes
// before entry 1). A tail (entries after some seq) is checked from its first entry's
// prev_hash on, and against the log's head when it reaches it.

const encoder = new TextEncoder();

function hexToBytes(hex) {
  if (typeof hex !== "string" || !/^[0-9a-f]{64}$/.test(hex)) return null;
  const out = new Uint8Array(32);
  for (let i = 0; i < 32; i++) out[i] = parseInt(hex.slice(2 * i, 2 * i + 2), 16);
  return out;
}

function bytesToHex(bytes) {
  return Array.from(new Uint8Array(bytes), (b) => b.toString(16).padStart(2, "0")).join("");
}

/** The chain hash of one entry, hex. */
export async function entryHash(entry, subtle = globalThis.crypto.subtle) {
  const prev = hexToBytes(entry.prev_hash);
  if (!prev) throw new Error(`entry ${entry.seq}: prev_hash is not 64 hex digits`);
  const fields = [entry.actor, entry.action, entry.key_id ?? "\u0000", entry.detail].map((f) =>
    encoder.encode(f),
  );
  const head = encoder.encode("tickgate-audit-v1");
  const size = head.length + 32 + 16 + fields.reduce((n, f) => n + 8 + f.length, 0);
  const buf = new Uint8Array(size);
  const view = new DataView(buf.buffer);
  let at = 0;
  buf.set(head, at);
  at += head.length;
  buf.set(prev, at);
  at += 32;
  view.setBigUint64(at, BigInt(entry.seq));
  at += 8;
  view.setBigInt64(at, BigInt(entry.at));
  at += 8;
  for (const f of fields) {
    view.setBigUint64(at, BigInt(f.length));
    at += 8;
    buf.set(f, at);
    at += f.length;
  }
  return bytesToHex(await subtle.digest("SHA-256", buf));
}

/**
 * Checks `entries` (oldest first) and, when given, the log's `head` ({seq, hash}).
 * Returns {ok: true, verified} or {ok: false, seq, reason}: the first entry that breaks.
 */
export async function verifyTail(entries, head = null, subtle = globalThis.crypto.subtle) {
  let prev = null;
  for (const entry of entries) {
    if (prev !== null && entry.seq !== prev.seq + 1) {
      return { ok: false, seq: prev.seq + 1, reason: "missing entry" };
    }
    if (entry.seq === 1 && entry.prev_hash !== "0".repeat(64)) {
      return { ok: false, seq: 1, reason: "the first entry does not start the chain" };
    }
    if (prev !== null && entry.prev_hash !== prev.hash) {
      return { ok: false, seq: entry.seq, reason: "does not chain to the previous entry" };
    }
    if ((await entryHash(entry, subtle)) !== entry.hash) {
      return { ok: false, seq: entry.seq, reason: "altered: its hash does not match its content" };
    }
    prev = entry;
  }
  if (head && prev) {
    if (prev.seq > head.seq) return { ok: false, seq: head.seq + 1, reason: "beyond the recorded head" };
    if (prev.seq === head.seq && prev.hash !== head.hash) {
      return { ok: false, seq: head.seq, reason: "the recorded head does not match" };
    }
  }
  return { ok: true, verified: entries.length };
}
