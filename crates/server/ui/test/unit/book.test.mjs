import { test } from "node:test";
import assert from "node:assert/strict";
import { BookMirror, BookError, checksumOf } from "../../js/book.js";

const CH = "book:sim:BTC-USDT";

/** A message with the checksum a correct gateway would send for `bids`/`asks` after it. */
function snapshot(seq, bids, asks, extra = {}) {
  return { type: "snapshot", channel: CH, seq, epoch: "e1", bids, asks, ...extra };
}

function withChecksum(msg, bookBids, bookAsks) {
  const lv = ([price, size]) => ({ price, size });
  return { ...msg, checksum: checksumOf(bookBids.map(lv), bookAsks.map(lv)) };
}

test("a snapshot loads best first, whatever order it came in", () => {
  const book = new BookMirror(CH);
  book.handle(snapshot(5, [["99", "1"], ["100", "2"], ["98.5", "3"]], [["102", "1"], ["101", "2"]]));
  assert.ok(book.live);
  assert.equal(book.seq, 5);
  assert.deepEqual(book.top(2).bids.map((l) => l.price), ["100", "99"]);
  assert.deepEqual(book.top(5).asks.map((l) => l.price), ["101", "102"]);
  assert.deepEqual(book.best().bid, { key: "100", price: "100", size: "2" });
});

test("updates: set, replace with the latest text, remove on zero in any spelling", () => {
  const book = new BookMirror(CH);
  book.handle(snapshot(1, [["100.0", "1"], ["99", "1"]], [["101", "1"]]));
  book.handle({ type: "update", channel: CH, epoch: "e1", seq: 2, bids: [["100.00", "5"], ["99", "0.000"]], asks: [["101.5", "2"]] });
  assert.deepEqual(book.top(10).bids, [{ key: "100", price: "100.00", size: "5" }]);
  assert.deepEqual(book.top(10).asks.map((l) => l.price), ["101", "101.5"]);
  // Removing an absent level is fine.
  book.handle({ type: "update", channel: CH, epoch: "e1", seq: 3, bids: [["50", "0"]], asks: [] });
  assert.equal(book.seq, 3);
});

test("one update may move a price from one side to the other (protocol.md §5 example)", () => {
  const book = new BookMirror(CH);
  book.handle(snapshot(1, [["64970.25", "1"], ["64970.07", "1"], ["64958.00", "1"]], [["64978.29", "1"]]));
  book.handle({
    type: "update", channel: CH, epoch: "e1", seq: 2,
    bids: [["64970.25", "0.00000"], ["64970.07", "0.00000"]],
    asks: [["64970.25", "0.44614"], ["64970.07", "0.51537"], ["64978.29", "0.00000"]],
  });
  assert.deepEqual(book.top(5).bids.map((l) => l.price), ["64958.00"]);
  assert.deepEqual(book.top(5).asks.map((l) => l.price), ["64970.07", "64970.25"]);
});

test("every checksum is verified; a wrong one is an error and the book goes stale", () => {
  const book = new BookMirror(CH);
  book.handle(withChecksum(snapshot(1, [["100", "1"]], [["101", "1"]]), [["100", "1"]], [["101", "1"]]));
  book.handle(withChecksum({ type: "update", channel: CH, epoch: "e1", seq: 2, bids: [["100", "2"]], asks: [] }, [["100", "2"]], [["101", "1"]]));
  assert.equal(book.checksumFailures, 0);
  const bad = withChecksum({ type: "update", channel: CH, epoch: "e1", seq: 3, bids: [["100", "3"]], asks: [] }, [["100", "2"]], [["101", "1"]]);
  assert.throws(() => book.handle(bad), (e) => e instanceof BookError && e.code === "checksum_mismatch");
  assert.equal(book.checksumFailures, 1);
  assert.ok(!book.live);
});

test("an update that does not follow is refused (seq gap, replay, other epoch)", () => {
  const cases = [
    ["gap", { seq: 4, epoch: "e1" }],
    ["repeat", { seq: 2, epoch: "e1" }],
    ["other epoch", { seq: 3, epoch: "e2" }],
  ];
  for (const [name, at] of cases) {
    const book = new BookMirror(CH);
    book.handle(snapshot(1, [["100", "1"]], [["101", "1"]]));
    book.handle({ type: "update", channel: CH, epoch: "e1", seq: 2, bids: [], asks: [] });
    assert.throws(
      () => book.handle({ type: "update", channel: CH, bids: [], asks: [], ...at }),
      (e) => e.code === "out_of_sequence",
      name,
    );
    assert.ok(!book.live, name);
  }
});

test("a resync notice stops updates until the next snapshot replaces everything", () => {
  const book = new BookMirror(CH);
  book.handle(snapshot(1, [["100", "1"]], [["101", "1"]]));
  book.handle({ type: "resync", channel: CH, seq: 2, reason: "gap" });
  assert.ok(!book.live);
  // Updates are ignored while stale (none is published, but be safe).
  assert.equal(book.handle({ type: "update", channel: CH, epoch: "e1", seq: 3, bids: [["1", "1"]], asks: [] }), false);
  book.handle(snapshot(3, [["90", "1"]], [["91", "1"]], { resync: true }));
  assert.ok(book.live);
  assert.deepEqual(book.top(5).bids.map((l) => l.price), ["90"]);
  assert.equal(book.seq, 3);
});

test("malformed levels are refused before anything changes", () => {
  const cases = [
    ["not an array", { bids: "x", asks: [] }],
    ["a number", { bids: [[100, "1"]], asks: [] }],
    ["three fields", { bids: [["100", "1", "x"]], asks: [] }],
    ["exponent", { bids: [["1e5", "1"]], asks: [] }],
  ];
  for (const [name, body] of cases) {
    const book = new BookMirror(CH);
    book.handle(snapshot(1, [["100", "1"]], [["101", "1"]]));
    assert.throws(() => book.handle({ type: "update", channel: CH, epoch: "e1", seq: 2, ...body }), (e) => e.code === "bad_message", name);
    assert.deepEqual(book.top(5).bids.map((l) => l.price), ["100"], name);
  }
});

test("against a naive model: random updates keep the same book and checksum", () => {
  let state = 7;
  const rand = (n) => {
    state = (state * 1103515245 + 12345) % 2147483648;
    return state % n;
  };
  const book = new BookMirror(CH);
  const model = { bids: new Map(), asks: new Map() };
  book.handle(snapshot(1, [], []));
  const spell = (p) => [`${p}`, `${p}.0`, `${p}.00`][rand(3)];
  for (let seq = 2; seq < 2000; seq++) {
    const msg = { type: "update", channel: CH, epoch: "e1", seq, bids: [], asks: [] };
    for (let i = 0; i < 1 + rand(4); i++) {
      const side = rand(2) ? "bids" : "asks";
      const p = side === "bids" ? 100 + rand(50) : 151 + rand(50);
      const size = rand(3) === 0 ? "0" : `${1 + rand(9)}.${rand(10)}`;
      const text = spell(p);
      msg[side].push([text, size]);
      if (size === "0") model[side].delete(p);
      else model[side].set(p, [text, size]);
    }
    const sorted = (m, desc) => [...m.entries()].sort((a, b) => (desc ? b[0] - a[0] : a[0] - b[0])).map(([, [price, size]]) => ({ price, size }));
    const bids = sorted(model.bids, true);
    const asks = sorted(model.asks, false);
    msg.checksum = checksumOf(bids, asks);
    book.handle(msg);
    assert.deepEqual(book.top(1000).bids.map(({ price, size }) => ({ price, size })), bids);
    assert.deepEqual(book.top(1000).asks.map(({ price, size }) => ({ price, size })), asks);
  }
});
