// The CRC-32 and the book checksum against the vectors of crates/book/src/checksum.rs and
// docs/protocol.md §8.3 (a real GET /v1/book answer). test/live.mjs cross-checks against a
// running gateway.
import { test } from "node:test";
import assert from "node:assert/strict";
import { crc32Text } from "../../js/crc32.js";
import { checksumOf } from "../../js/book.js";

const lv = ([price, size]) => ({ price, size });

test("CRC-32 check values (IEEE, as zlib)", () => {
  assert.equal(crc32Text(""), 0);
  assert.equal(crc32Text("123456789"), 0xcbf43926);
  assert.equal(crc32Text("The quick brown fox jumps over the lazy dog"), 0x414fa339);
});

test("the documented worked example (checksum.rs matches_documented_example)", () => {
  const bids = [["100.5", "2"], ["100.4", "1.50"]].map(lv);
  const asks = [["100.6", "3"]].map(lv);
  assert.equal(checksumOf(bids, asks), 730521353);
  assert.equal(crc32Text("100.5:2:100.6:3:100.4:1.50"), 730521353);
  // Trailing zeros matter.
  assert.equal(checksumOf([["100.5", "2"], ["100.4", "1.5"]].map(lv), asks), 837807020);
});

test("an empty book is 0 and only 10 levels a side count", () => {
  assert.equal(checksumOf([], []), 0);
  const bids = Array.from({ length: 15 }, (_, i) => lv([String(100 - i), "1"]));
  const asks = Array.from({ length: 15 }, (_, i) => lv([String(101 + i), "1"]));
  assert.equal(checksumOf(bids, asks), checksumOf(bids.slice(0, 10), asks.slice(0, 10)));
});

test("a real GET /v1/book answer (docs/protocol.md §8.3)", () => {
  const bids = [
    ["150.109", "239.99"], ["150.108", "47.40"], ["150.107", "178.32"], ["150.106", "323.32"],
    ["150.105", "168.65"], ["150.099", "297.65"], ["150.097", "239.98"], ["150.096", "30.33"],
    ["150.095", "11.24"], ["150.094", "386.64"],
  ].map(lv);
  const asks = [
    ["150.110", "41.66"], ["150.111", "78.33"], ["150.112", "139.99"], ["150.113", "277.98"],
    ["150.114", "293.73"], ["150.115", "173.32"], ["150.116", "291.30"], ["150.118", "386.64"],
    ["150.122", "137.24"], ["150.123", "299.23"],
  ].map(lv);
  assert.equal(checksumOf(bids, asks), 4035351607);
});
