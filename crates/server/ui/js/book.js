// A local mirror of one gateway order book channel, kept exactly as docs/protocol.md §8
// describes: snapshot, then updates whose seq follows, levels keyed by exact price, every
// message's checksum verified (§8.3, identical to crates/book/src/checksum.rs).

import { canonical, compare, isDecimal, isZero } from "./decimal.js";
import { crc32Text } from "./crc32.js";

/** Levels the checksum covers per side. */
export const CHECKSUM_DEPTH = 10;

/** One side of a book: levels sorted best first, found by binary search on the exact price. */
class Side {
  constructor(descending) {
    this.descending = descending;
    /** @type {{key: string, price: string, size: string}[]} */
    this.levels = [];
  }

  order(a, b) {
    const c = compare(a, b);
    return this.descending ? -c : c;
  }

  /** Index of `key`, or -(insertion point) - 1. */
  find(key) {
    let lo = 0;
    let hi = this.levels.length - 1;
    while (lo <= hi) {
      const mid = (lo + hi) >> 1;
      const c = this.order(this.levels[mid].key, key);
      if (c === 0) return mid;
      if (c < 0) lo = mid + 1;
      else hi = mid - 1;
    }
    return -lo - 1;
  }

  set(price, size) {
    const key = canonical(price);
    const at = this.find(key);
    if (isZero(size)) {
      if (at >= 0) this.levels.splice(at, 1);
      return;
    }
    // The text shown (and checksummed) is the one of the latest message that set the level.
    const level = { key, price, size };
    if (at >= 0) this.levels[at] = level;
    else this.levels.splice(-at - 1, 0, level);
  }

  load(levels) {
    this.levels = [];
    for (const [price, size] of levels) this.set(price, size);
  }
}

/** Why a message could not be applied: the mirror must be rebuilt from a fresh snapshot. */
export class BookError extends Error {
  constructor(code, message) {
    super(message);
    this.code = code;
  }
}

function checkLevels(levels, what) {
  if (!Array.isArray(levels)) throw new BookError("bad_message", `${what} is not an array`);
  for (const level of levels) {
    if (!Array.isArray(level) || level.length !== 2 || !isDecimal(level[0]) || !isDecimal(level[1])) {
      throw new BookError("bad_message", `${what} has a level that is not ["price","size"]`);
    }
  }
}

/** The tickgate checksum of best-first bid and ask lists of `{price, size}`. */
export function checksumOf(bids, asks) {
  const pieces = [];
  for (let i = 0; i < CHECKSUM_DEPTH; i++) {
    if (i < bids.length) pieces.push(`${bids[i].price}:${bids[i].size}`);
    if (i < asks.length) pieces.push(`${asks[i].price}:${asks[i].size}`);
  }
  return crc32Text(pieces.join(":"));
}

export class BookMirror {
  constructor(channel) {
    this.channel = channel;
    this.bids = new Side(true);
    this.asks = new Side(false);
    this.seq = null;
    this.epoch = null;
    /** False until a snapshot arrives, and again after a `resync` notice. */
    this.live = false;
    this.checksumFailures = 0;
    this.messages = 0;
  }

  /**
   * Applies one server message of this channel (`snapshot`, `update`, `resync`); other types
   * are ignored. Returns true when the book changed. Throws a BookError when the message does
   * not follow (seq or epoch) or the checksum does not match: the caller resubscribes.
   */
  handle(msg) {
    switch (msg.type) {
      case "snapshot":
        checkLevels(msg.bids, "bids");
        checkLevels(msg.asks, "asks");
        this.bids.load(msg.bids);
        this.asks.load(msg.asks);
        this.seq = msg.seq;
        this.epoch = msg.epoch;
        this.live = true;
        break;
      case "update":
        if (!this.live) return false; // waiting for the snapshot after a resync
        if (msg.epoch !== this.epoch || msg.seq !== this.seq + 1) {
          this.live = false;
          throw new BookError(
            "out_of_sequence",
            `${this.channel}: update ${msg.epoch}/${msg.seq} does not follow ${this.epoch}/${this.seq}`,
          );
        }
        checkLevels(msg.bids, "bids");
        checkLevels(msg.asks, "asks");
        for (const [price, size] of msg.bids) this.bids.set(price, size);
        for (const [price, size] of msg.asks) this.asks.set(price, size);
        this.seq = msg.seq;
        break;
      case "resync":
        this.live = false;
        this.seq = msg.seq;
        return true;
      default:
        return false;
    }
    this.messages++;
    if (typeof msg.checksum === "number" && this.checksum() !== msg.checksum) {
      this.checksumFailures++;
      this.live = false;
      throw new BookError(
        "checksum_mismatch",
        `${this.channel}: checksum ${this.checksum()} after seq ${msg.seq}, the gateway says ${msg.checksum}`,
      );
    }
    return true;
  }

  /** The mirror's checksum now. */
  checksum() {
    return checksumOf(this.bids.levels, this.asks.levels);
  }

  /** The best `n` levels of each side, best first: `{bids, asks}` of `{price, size}`. */
  top(n) {
    return { bids: this.bids.levels.slice(0, n), asks: this.asks.levels.slice(0, n) };
  }

  best() {
    return { bid: this.bids.levels[0] || null, ask: this.asks.levels[0] || null };
  }

  clear() {
    this.bids.levels = [];
    this.asks.levels = [];
    this.live = false;
  }
}
