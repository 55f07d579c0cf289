// js/audit.js against an audit log captured from a real gateway (GET /admin/v1/audit, written
// by test/live.test.mjs with TICKGATE_AUDIT_FIXTURE): its chain, as crates/store computed it,
// verifies; every kind of tampering is named at the right entry.
import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { entryHash, verifyTail } from "../../js/audit.js";

const page = JSON.parse(readFileSync(new URL("./audit_tail.json", import.meta.url), "utf8"));

test("the captured log's hashes are recomputed exactly", async () => {
  for (const entry of page.entries) assert.equal(await entryHash(entry), entry.hash, `entry ${entry.seq}`);
  assert.deepEqual(await verifyTail(page.entries, page.head), { ok: true, verified: page.entries.length });
});

test("a tail verifies from its first entry, and against the head", async () => {
  assert.equal((await verifyTail(page.entries.slice(2), page.head)).ok, true);
  assert.equal((await verifyTail([], page.head)).ok, true);
});

test("tampering is caught at the right entry", async () => {
  const n = page.entries.length;
  const edit = (f) => {
    const entries = structuredClone(page.entries);
    f(entries);
    return entries;
  };
  const cases = [
    ["detail edited", edit((e) => (e[1].detail = e[1].detail.replace('"name":"', '"name":"x'))), { seq: 2, reason: "altered: its hash does not match its content" }],
    ["actor edited", edit((e) => (e[0].actor = "cli:someone")), { seq: 1, reason: "altered: its hash does not match its content" }],
    ["time edited", edit((e) => (e[2].at += 1)), { seq: 3, reason: "altered: its hash does not match its content" }],
    ["key id removed", edit((e) => delete e[1].key_id), { seq: 2, reason: "altered: its hash does not match its content" }],
    ["entry removed", edit((e) => e.splice(1, 1)), { seq: 2, reason: "missing entry" }],
    ["entries swapped", edit((e) => ([e[1], e[2]] = [e[2], e[1]])), { seq: 2, reason: "missing entry" }],
    ["hash recomputed but chain broken", edit((e) => (e[1].prev_hash = "1".repeat(64))), { seq: 2, reason: "does not chain to the previous entry" }],
    ["first entry not from genesis", edit((e) => (e[0].prev_hash = "2".repeat(64))), { seq: 1, reason: "the first entry does not start the chain" }],
  ];
  for (const [name, entries, want] of cases) {
    assert.deepEqual(await verifyTail(entries, page.head), { ok: false, ...want }, name);
  }
  // A cut-off tail: the head says there was more (or something else) at its seq.
  const head = { ...page.head, hash: "f".repeat(64) };
  assert.deepEqual(await verifyTail(page.entries, head), { ok: false, seq: head.seq, reason: "the recorded head does not match" });
  assert.deepEqual(await verifyTail(page.entries, { seq: n - 1, hash: page.head.hash }), { ok: false, seq: n, reason: "beyond the recorded head" });
});

test("a malformed prev_hash is an error, not a pass", async () => {
  await assert.rejects(entryHash({ ...page.entries[0], prev_hash: "zz" }), /64 hex digits/);
});
