// The market view: venue status, instruments with live tickers (every venue and `all`), a heat
// map of 24 h change, and for the chosen instrument its candles (history + live), ladder,
// depth chart, trade tape and the cross-venue best bid/offer.
//
// Messages only update state and mark what changed; one requestAnimationFrame callback draws
// what is dirty, at most once per frame, and measures itself (Performance API) so the page can
// prove its render budget (docs/dashboard.md, docs/benchmarks.md).

import { BookMirror, BookError } from "./book.js";
import { toNumber } from "./decimal.js";
import { drawDepth, heatColor } from "./draw.js";
import { getJSON } from "./api.js";
import * as LightweightCharts from "../vendor/lightweight-charts.standalone.production.mjs";

export const INTERVALS = ["1s", "1m", "5m", "15m", "1h", "1d"];
const LADDER_ROWS = 12;
const TAPE_ROWS = 40;
const DEPTH_LEVELS = 50;
/** Ticker channels subscribed at most (the connection allows 200 channels by default). */
const MAX_TICKERS = 150;

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === "class") node.className = v;
    else if (k === "text") node.textContent = v;
    else if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
    else node.setAttribute(k, v);
  }
  for (const c of children) node.append(c);
  return node;
}

function setText(node, text) {
  if (node.textContent !== text) node.textContent = text;
}

const key = (venue, symbol) => `${venue}:${symbol}`;

/** % change over 24 h from a ticker (`change_24h` against the price 24 h ago), or null. */
export function changePercent(ticker) {
  if (!ticker || ticker.last === null || ticker.change_24h === null) return null;
  const last = toNumber(ticker.last);
  const change = toNumber(ticker.change_24h);
  const before = last - change;
  return before > 0 ? (change / before) * 100 : null;
}

function fmtPercent(p) {
  return p === null ? "–" : `${p >= 0 ? "+" : ""}${p.toFixed(2)}%`;
}

/** The spread for display, with as many decimals as the prices have. */
function spread(bid, ask) {
  const decimals = (p) => (p.split(".")[1] || "").length;
  return (toNumber(ask) - toNumber(bid)).toFixed(Math.max(decimals(bid), decimals(ask)));
}

function fmtTime(micros) {
  const d = new Date(micros / 1000);
  return d.toISOString().slice(11, 23);
}

/** Render-time statistics (ms), read by the browser test and the benchmark. */
class RenderStats {
  constructor() {
    this.reset();
  }
  reset() {
    this.frames = 0;
    this.updates = 0;
    this.totalMs = 0;
    this.maxMs = 0;
    this.samples = [];
    this.messages = 0;
    this.handleMs = 0;
  }
  handled(ms) {
    this.messages++;
    this.handleMs += ms;
  }
  record(ms, updates) {
    this.frames++;
    this.updates += updates;
    this.totalMs += ms;
    this.maxMs = Math.max(this.maxMs, ms);
    if (this.samples.length < 20000) this.samples.push(ms);
  }
  summary() {
    const sorted = [...this.samples].sort((a, b) => a - b);
    const q = (f) => (sorted.length ? sorted[Math.min(sorted.length - 1, Math.floor(f * sorted.length))] : 0);
    return {
      frames: this.frames,
      updates: this.updates,
      meanFrameMs: this.frames ? this.totalMs / this.frames : 0,
      p50FrameMs: q(0.5),
      p99FrameMs: q(0.99),
      maxFrameMs: this.maxMs,
      meanMsPerUpdate: this.updates ? this.totalMs / this.updates : 0,
      messages: this.messages,
      /** Applying messages to state (book mirror, chart series), per message. */
      meanHandleMs: this.messages ? this.handleMs / this.messages : 0,
      /** Everything the page does per data update: handling plus its share of rendering. */
      meanWorkMsPerUpdate: this.updates ? (this.handleMs + this.totalMs) / this.updates : 0,
    };
  }
}

export class MarketView {
  constructor(root, conn) {
    this.root = root;
    this.conn = conn;
    this.instruments = [];
    this.venues = [];
    this.tickers = new Map();
    this.status = new Map();
    this.lagMicros = new Map();
    this.selected = null;
    this.interval = "1m";
    this.book = null;
    this.allBook = null;
    this.trades = [];
    this.dirty = new Set();
    this.pendingUpdates = 0;
    this.stats = new RenderStats();
    this.bookErrors = 0;
    this.frame = null;
    this.build();
  }

  build() {
    const r = this.root;
    this.venueBox = r.querySelector("#venues");
    this.instrumentBody = r.querySelector("#instruments tbody");
    this.heat = r.querySelector("#heatmap");
    this.title = r.querySelector("#sel-title");
    this.intervalBox = r.querySelector("#intervals");
    this.chartBox = r.querySelector("#chart");
    this.chartNote = r.querySelector("#chart-note");
    this.ladder = r.querySelector("#ladder");
    this.depth = r.querySelector("#depth");
    this.tapeBody = r.querySelector("#tape tbody");
    this.xvenueBody = r.querySelector("#xvenue tbody");
    for (const iv of INTERVALS) {
      this.intervalBox.append(el("button", { class: "iv", "data-interval": iv, text: iv, onclick: () => this.setInterval(iv) }));
    }
    const rows = (side) =>
      Array.from({ length: LADDER_ROWS }, () => {
        const tr = el("tr", { class: side }, el("td", { class: "px" }), el("td", { class: "sz" }), el("td", { class: "bar" }, el("span")));
        return tr;
      });
    this.askRows = rows("ask");
    this.bidRows = rows("bid");
    this.ladder.querySelector("#ladder-asks").append(...this.askRows);
    this.ladder.querySelector("#ladder-bids").append(...this.bidRows);
    this.spread = this.ladder.querySelector("#spread");
    this.chart = LightweightCharts.createChart(this.chartBox, {
      autoSize: true,
      layout: { attributionLogo: false, background: { type: "solid", color: "#11151c" }, textColor: "#c9d1d9" },
      grid: { vertLines: { color: "#1c2430" }, horzLines: { color: "#1c2430" } },
      timeScale: { timeVisible: true, secondsVisible: true },
    });
    this.candles = this.chart.addSeries(LightweightCharts.CandlestickSeries, {
      upColor: "#26a69a",
      downColor: "#ef5350",
      borderVisible: false,
      wickUpColor: "#26a69a",
      wickDownColor: "#ef5350",
    });
    this.volume = this.chart.addSeries(LightweightCharts.HistogramSeries, { priceFormat: { type: "volume" }, priceScaleId: "" });
    this.volume.priceScale().applyOptions({ scaleMargins: { top: 0.8, bottom: 0 } });
    this.bars = 0;
  }

  /** Loads the instrument list and subscribes to what the page shows. */
  async start() {
    const { instruments } = await getJSON("/ui/api/instruments");
    this.instruments = instruments;
    this.venues = [...new Set(instruments.map((i) => i.venue))];
    const symbols = [...new Set(instruments.map((i) => i.symbol))];
    this.rows = [
      ...instruments.map((i) => ({ venue: i.venue, symbol: i.symbol })),
      ...symbols.map((s) => ({ venue: "all", symbol: s })),
    ].sort((a, b) => a.symbol.localeCompare(b.symbol) || (a.venue === "all") - (b.venue === "all") || a.venue.localeCompare(b.venue));
    this.buildInstruments();
    const channels = [
      ...this.venues.map((v) => `status:${v}`),
      ...this.rows.slice(0, MAX_TICKERS).map((r) => `ticker:${r.venue}:${r.symbol}`),
    ];
    this.conn.subscribe(channels);
    if (this.rows.length > 0) this.select(this.rows.find((r) => r.venue !== "all") || this.rows[0]);
    this.loop();
  }

  buildInstruments() {
    this.instrumentBody.replaceChildren();
    this.instrumentCells = new Map();
    this.heatTiles = new Map();
    this.heat.replaceChildren();
    for (const r of this.rows) {
      const cells = {
        last: el("td", { class: "num" }),
        bid: el("td", { class: "num" }),
        ask: el("td", { class: "num" }),
        change: el("td", { class: "num" }),
        volume: el("td", { class: "num" }),
      };
      const tr = el(
        "tr",
        { "data-venue": r.venue, "data-symbol": r.symbol, onclick: () => this.select(r) },
        el("td", { text: r.venue }),
        el("td", { text: r.symbol }),
        cells.last,
        cells.bid,
        cells.ask,
        cells.change,
        cells.volume,
      );
      cells.row = tr;
      this.instrumentBody.append(tr);
      this.instrumentCells.set(key(r.venue, r.symbol), cells);
      const tile = el("div", { class: "tile", onclick: () => this.select(r) }, el("b", { text: r.symbol }), el("small", { text: r.venue }), el("span", { text: "–" }));
      this.heat.append(tile);
      this.heatTiles.set(key(r.venue, r.symbol), tile);
    }
  }

  select(row) {
    const prev = this.selected;
    if (prev && prev.venue === row.venue && prev.symbol === row.symbol) return;
    if (prev) this.conn.unsubscribe(this.detailChannels(prev));
    this.selected = row;
    this.book = new BookMirror(`book:${row.venue}:${row.symbol}`);
    this.allBook = row.venue === "all" ? this.book : new BookMirror(`book:all:${row.symbol}`);
    this.trades = [];
    this.tradeCount = 0;
    this.xvenueRows = null;
    for (const [k, cells] of this.instrumentCells) cells.row.classList.toggle("selected", k === key(row.venue, row.symbol));
    setText(this.title, `${row.symbol} · ${row.venue === "all" ? "all venues (consolidated)" : row.venue}`);
    this.conn.subscribe(this.detailChannels(row));
    this.loadHistory(row);
    this.dirty.add("ladder").add("tape").add("xvenue");
  }

  detailChannels(row) {
    const { venue, symbol } = row;
    const channels = [`book:${venue}:${symbol}`];
    if (venue !== "all") channels.push(`trades:${venue}:${symbol}`, `candles.${this.interval}:${venue}:${symbol}`, `book:all:${symbol}`);
    return channels;
  }

  setInterval(iv) {
    if (iv === this.interval || !this.selected) return;
    const row = this.selected;
    if (row.venue !== "all") this.conn.unsubscribe([`candles.${this.interval}:${row.venue}:${row.symbol}`]);
    this.interval = iv;
    if (row.venue !== "all") this.conn.subscribe([`candles.${iv}:${row.venue}:${row.symbol}`]);
    this.loadHistory(row);
  }

  async loadHistory(row) {
    for (const b of this.intervalBox.children) b.classList.toggle("active", b.dataset.interval === this.interval);
    this.candles.setData([]);
    this.volume.setData([]);
    this.bars = 0;
    this.liveBar = null;
    if (row.venue === "all") {
      setText(this.chartNote, "Candles and trades are per venue: pick a venue's row.");
      return;
    }
    setText(this.chartNote, "");
    const q = new URLSearchParams({ venue: row.venue, symbol: row.symbol, interval: this.interval, order: "desc", limit: "500" });
    const tq = new URLSearchParams({ venue: row.venue, symbol: row.symbol, order: "desc", limit: String(TAPE_ROWS) });
    const interval = this.interval;
    try {
      const [page, trades] = await Promise.all([getJSON(`/ui/api/candles?${q}`), getJSON(`/ui/api/trades?${tq}`).catch(() => ({ trades: [] }))]);
      if (this.selected !== row || this.interval !== interval) return;
      const bars = page.candles.reverse();
      // Live candles may already have arrived: keep the newest of both.
      const live = this.liveBar;
      this.candles.setData(bars.map((c) => this.bar(c)));
      this.volume.setData(bars.map((c) => this.volumeBar(c)));
      this.bars = bars.length;
      if (live && (!bars.length || live.start >= bars.at(-1).start)) this.applyCandle(live);
      for (const t of trades.trades.reverse()) this.addTrade(t);
      this.dirty.add("tape");
    } catch (error) {
      setText(this.chartNote, `history: ${error.code || error.message}; live candles only`);
    }
  }

  bar(c) {
    return { time: Math.floor(c.start / 1e6), open: toNumber(c.open), high: toNumber(c.high), low: toNumber(c.low), close: toNumber(c.close) };
  }

  volumeBar(c) {
    const up = toNumber(c.close) >= toNumber(c.open);
    return { time: Math.floor(c.start / 1e6), value: toNumber(c.volume), color: up ? "#26a69a66" : "#ef535066" };
  }

  applyCandle(c) {
    try {
      this.candles.update(this.bar(c));
      this.volume.update(this.volumeBar(c));
      this.bars = Math.max(this.bars, 1);
    } catch {
      // An update older than the last bar (history raced the live channel): the chart keeps
      // the newer one.
    }
  }

  addTrade(t) {
    this.trades.unshift(t);
    if (this.trades.length > TAPE_ROWS) this.trades.length = TAPE_ROWS;
    this.tradeCount++;
  }

  /** One server message (timed: the render statistics include handling). */
  onMessage(msg) {
    const t0 = performance.now();
    try {
      this.handle(msg);
    } finally {
      this.stats.handled(performance.now() - t0);
    }
  }

  handle(msg) {
    const ch = msg.channel;
    if (!ch) return;
    const [kind, venue, symbol] = ch.split(":");
    if (msg.type === "snapshot" || msg.type === "update") this.pendingUpdates++;
    if (kind === "status") {
      if (msg.status) {
        this.status.set(venue, msg.status);
        this.dirty.add("venues");
      }
      return;
    }
    if (kind === "ticker" && msg.ticker) {
      this.tickers.set(key(venue, symbol), msg.ticker);
      if (typeof msg.recv_ts === "number" && typeof msg.ts === "number") this.lagMicros.set(venue, msg.recv_ts - msg.ts);
      this.dirty.add("tickers").add("xvenue");
      return;
    }
    const sel = this.selected;
    if (!sel || symbol !== sel.symbol) return;
    if (kind === "book") {
      const mirror = venue === sel.venue ? this.book : venue === "all" ? this.allBook : null;
      if (!mirror) return;
      try {
        if (mirror.handle(msg)) this.dirty.add(mirror === this.book ? "ladder" : "xvenue");
      } catch (error) {
        if (!(error instanceof BookError)) throw error;
        // Our copy is wrong (or the message was bad): start the channel over.
        this.bookErrors++;
        mirror.clear();
        this.conn.restart(ch);
      }
      if (mirror === this.allBook) this.dirty.add("xvenue");
      return;
    }
    if (venue !== sel.venue) return;
    if (kind === "trades") {
      if (msg.type === "gap") {
        this.addTrade({ gap: true, from: msg.from_seq, to: msg.to_seq, reason: msg.reason });
      } else if (Array.isArray(msg.trades)) {
        for (const t of msg.trades) this.addTrade(t);
      }
      this.dirty.add("tape");
      return;
    }
    if (kind === `candles.${this.interval}` && msg.candle) {
      this.liveBar = msg.candle;
      this.applyCandle(msg.candle);
    }
  }

  /** The venues' lag from /metrics (`tickgate_venue_lag_*`), µs, when the gateway exposes it. */
  setMetricLag(lag) {
    this.metricLag = lag;
    this.dirty.add("venues");
  }

  loop() {
    const tick = () => {
      this.frame = requestAnimationFrame(tick);
      if (this.dirty.size === 0) return;
      const t0 = performance.now();
      this.render();
      const t1 = performance.now();
      performance.measure("tickgate-render", { start: t0, end: t1 });
      this.stats.record(t1 - t0, this.pendingUpdates);
      this.pendingUpdates = 0;
    };
    this.frame = requestAnimationFrame(tick);
  }

  stop() {
    if (this.frame) cancelAnimationFrame(this.frame);
    this.frame = null;
  }

  render() {
    const dirty = this.dirty;
    this.dirty = new Set();
    if (dirty.has("venues")) this.renderVenues();
    if (dirty.has("tickers")) this.renderTickers();
    if (dirty.has("ladder")) this.renderLadder();
    if (dirty.has("tape")) this.renderTape();
    if (dirty.has("xvenue")) this.renderCrossVenue();
  }

  renderVenues() {
    const cards = this.venues.map((v) => {
      const s = this.status.get(v);
      const state = s ? s.state : "unknown";
      const metric = this.metricLag?.get(v);
      const lag = metric !== undefined ? `lag ${(metric / 1000).toFixed(1)} ms` : this.lagMicros.has(v) ? `lag ${(this.lagMicros.get(v) / 1000).toFixed(1)} ms (recv − exchange)` : "lag –";
      return el("div", { class: `venue ${state}`, "data-venue": v, "data-state": state, title: s ? s.detail : "" }, el("b", { text: v }), el("span", { class: "state", text: state }), el("small", { text: lag }));
    });
    this.venueBox.replaceChildren(...cards);
  }

  renderTickers() {
    for (const [k, cells] of this.instrumentCells) {
      const t = this.tickers.get(k);
      if (!t) continue;
      setText(cells.last, t.last ?? "–");
      setText(cells.bid, t.bid ?? "–");
      setText(cells.ask, t.ask ?? "–");
      const p = changePercent(t);
      setText(cells.change, fmtPercent(p));
      cells.change.className = `num ${p === null ? "" : p >= 0 ? "up" : "down"}`;
      setText(cells.volume, t.volume_24h ?? "–");
      const tile = this.heatTiles.get(k);
      if (tile) {
        tile.style.background = heatColor(p);
        setText(tile.lastChild, fmtPercent(p));
      }
    }
  }

  renderLadder() {
    const book = this.book;
    const top = book ? book.top(Math.max(LADDER_ROWS, DEPTH_LEVELS)) : { bids: [], asks: [] };
    const asks = top.asks.slice(0, LADDER_ROWS);
    const bids = top.bids.slice(0, LADDER_ROWS);
    const maxSize = Math.max(1e-12, ...asks.map((l) => toNumber(l.size)), ...bids.map((l) => toNumber(l.size)));
    const fill = (tr, level) => {
      const [px, sz, bar] = tr.children;
      setText(px, level ? level.price : "");
      setText(sz, level ? level.size : "");
      bar.firstChild.style.width = level ? `${Math.round((toNumber(level.size) / maxSize) * 100)}%` : "0";
    };
    // Asks: best nearest the spread (bottom of their table).
    this.askRows.forEach((tr, i) => fill(tr, asks[LADDER_ROWS - 1 - i]));
    this.bidRows.forEach((tr, i) => fill(tr, bids[i]));
    const live = book && book.live;
    this.ladder.dataset.seq = live ? String(book.seq) : "";
    this.ladder.dataset.epoch = live ? book.epoch : "";
    this.ladder.dataset.bestBid = live && bids[0] ? bids[0].price : "";
    this.ladder.dataset.bestAsk = live && asks[0] ? asks[0].price : "";
    this.ladder.dataset.live = live ? "true" : "false";
    this.ladder.classList.toggle("stale", !live);
    setText(
      this.spread,
      !live ? "book rebuilding…" : bids[0] && asks[0] ? `spread ${spread(bids[0].price, asks[0].price)} · seq ${book.seq}` : `seq ${book.seq}`,
    );
    drawDepth(this.depth, { bids: top.bids.slice(0, DEPTH_LEVELS), asks: top.asks.slice(0, DEPTH_LEVELS) });
  }

  /** The tape's rows are made once and updated in place (no layout of new nodes per trade). */
  renderTape() {
    if (!this.tapeRows) {
      this.tapeRows = Array.from({ length: TAPE_ROWS }, () => el("tr", {}, el("td"), el("td", { class: "num" }), el("td", { class: "num" }), el("td")));
      this.tapeBody.replaceChildren(...this.tapeRows);
    }
    this.tapeRows.forEach((tr, i) => {
      const t = this.trades[i];
      const [time, price, size, side] = tr.children;
      const cls = !t ? "" : t.gap ? "gap" : t.side;
      if (tr.className !== cls) tr.className = cls;
      setText(time, !t ? "" : t.gap ? "gap" : fmtTime(t.ts));
      setText(price, !t ? "" : t.gap ? `seq ${t.from}–${t.to}` : t.price);
      setText(size, !t || t.gap ? "" : t.size);
      setText(side, !t ? "" : t.gap ? t.reason : t.side);
    });
  }

  renderCrossVenue() {
    const sel = this.selected;
    if (!sel) return;
    if (!this.xvenueRows) {
      const venues = this.rows.filter((r) => r.symbol === sel.symbol).map((r) => r.venue);
      this.xvenueRows = venues.map((v) => ({
        venue: v,
        tr: el(
          "tr",
          { "data-venue": v, class: v === "all" ? "all" : "" },
          el("td", { text: v === "all" ? "all (book:all)" : v }),
          el("td", { class: "num up" }),
          el("td", { class: "num" }),
          el("td", { class: "num down" }),
          el("td", { class: "num" }),
        ),
      }));
      this.xvenueBody.replaceChildren(...this.xvenueRows.map((r) => r.tr));
    }
    for (const { venue: v, tr } of this.xvenueRows) {
      let bid;
      let ask;
      if (v === "all" && this.allBook?.live) {
        const best = this.allBook.best();
        bid = best.bid ? [best.bid.price, best.bid.size] : null;
        ask = best.ask ? [best.ask.price, best.ask.size] : null;
      } else {
        const t = this.tickers.get(key(v, sel.symbol));
        bid = t && t.bid !== null ? [t.bid, t.bid_size] : null;
        ask = t && t.ask !== null ? [t.ask, t.ask_size] : null;
      }
      const [, bidPx, bidSz, askPx, askSz] = tr.children;
      setText(bidPx, bid ? bid[0] : "–");
      setText(bidSz, bid ? bid[1] ?? "" : "");
      setText(askPx, ask ? ask[0] : "–");
      setText(askSz, ask ? ask[1] ?? "" : "");
    }
  }
}
