// The page's WebSocket connection to /v1/ws, with what the Rust SDK does: reconnect with
// backoff, and on every (re)connect subscribe again with `resume` at the last position of each
// channel (docs/protocol.md §6.1), so a short outage replays exactly what was missed and a
// longer one (or a gateway restart: a new epoch) starts the channel over with a snapshot or a
// `gap` notice. Each connection uses a fresh single-use token (`getToken`), never a key.

/** Close codes after which reconnecting with the same credentials cannot help. */
const AUTH_CLOSES = new Set([4002, 4003, 4004]);

export const STATES = ["connecting", "live", "reconnecting", "auth_failed", "closed"];

export class Connection {
  /**
   * @param {object} o
   * @param {string} o.url            ws(s)://host/v1/ws
   * @param {() => Promise<string|null>} o.getToken  a single-use token, or null (anonymous)
   * @param {(msg: object) => void} o.onMessage       every server message, parsed
   * @param {(state: string, info: object) => void} [o.onState]
   * @param {typeof WebSocket} [o.WebSocket]
   * @param {number} [o.minDelayMs] first reconnect delay (doubles to maxDelayMs, full jitter)
   */
  constructor({ url, getToken, onMessage, onState = () => {}, WebSocket: WS = globalThis.WebSocket, minDelayMs = 250, maxDelayMs = 8000 }) {
    this.url = url;
    this.getToken = getToken;
    this.onMessage = onMessage;
    this.onState = onState;
    this.WS = WS;
    this.minDelayMs = minDelayMs;
    this.maxDelayMs = maxDelayMs;
    /** Channels wanted, in the order asked. */
    this.channels = new Set();
    /** channel -> {epoch, seq}: the last message processed (or the ack's join position). */
    this.positions = new Map();
    this.ws = null;
    this.nextId = 1;
    this.attempt = 0;
    /** Connections opened after the first one. */
    this.reconnects = 0;
    /** Channels recovered exactly / started over, over all reconnects. */
    this.recovered = 0;
    this.lost = 0;
    this.state = "closed";
    this.stopped = false;
    this.timer = null;
    this.everOpened = false;
  }

  setState(state, info = {}) {
    this.state = state;
    this.onState(state, { reconnects: this.reconnects, recovered: this.recovered, lost: this.lost, ...info });
  }

  start() {
    this.stopped = false;
    this.open();
  }

  stop() {
    this.stopped = true;
    clearTimeout(this.timer);
    if (this.ws) this.ws.close(1000, "page closed");
    this.ws = null;
    this.setState("closed");
  }

  async open() {
    this.setState(this.everOpened ? "reconnecting" : "connecting", { attempt: this.attempt });
    let token;
    try {
      token = await this.getToken();
    } catch (error) {
      if (error && error.auth) {
        this.setState("auth_failed", { code: error.code, message: error.message });
        return;
      }
      this.retry();
      return;
    }
    if (this.stopped) return;
    const url = token ? `${this.url}?token=${encodeURIComponent(token)}` : this.url;
    const ws = new this.WS(url);
    this.ws = ws;
    ws.onopen = () => {
      if (this.everOpened) this.reconnects++;
      this.everOpened = true;
      this.attempt = 0;
      this.setState("live");
      this.sendSubscribe([...this.channels], true);
    };
    ws.onmessage = (event) => {
      let msg;
      try {
        msg = JSON.parse(event.data);
      } catch {
        return;
      }
      this.track(msg);
      this.onMessage(msg);
    };
    ws.onclose = (event) => {
      if (this.ws !== ws) return;
      this.ws = null;
      if (this.stopped) return;
      if (AUTH_CLOSES.has(event.code)) {
        this.setState("auth_failed", { code: event.reason || String(event.code) });
        return;
      }
      this.retry();
    };
    ws.onerror = () => {};
  }

  retry() {
    if (this.stopped) return;
    this.attempt++;
    const cap = Math.min(this.maxDelayMs, this.minDelayMs * 2 ** Math.min(this.attempt - 1, 10));
    const delay = this.minDelayMs + Math.random() * (cap - this.minDelayMs);
    this.setState(this.everOpened ? "reconnecting" : "connecting", { attempt: this.attempt, delayMs: delay });
    this.timer = setTimeout(() => this.open(), delay);
  }

  /** Keeps each channel's position up to date from what arrives. */
  track(msg) {
    const channel = msg.channel;
    switch (msg.type) {
      case "subscribed": {
        for (const [ch, ok] of Object.entries(msg.recovered || {})) {
          if (ok) this.recovered++;
          else this.lost++;
        }
        for (const [ch, pos] of Object.entries(msg.positions || {})) this.positions.set(ch, { epoch: pos.epoch, seq: pos.seq });
        break;
      }
      case "snapshot":
      case "update":
        if (channel) this.positions.set(channel, { epoch: msg.epoch, seq: msg.seq });
        break;
      case "resync":
      case "gap": {
        const known = this.positions.get(channel);
        const seq = msg.type === "gap" ? msg.to_seq : msg.seq;
        if (known) this.positions.set(channel, { epoch: known.epoch, seq: Math.max(seq, 0) });
        break;
      }
      default:
    }
  }

  send(op) {
    if (this.ws && this.ws.readyState === 1) {
      this.ws.send(JSON.stringify(op));
      return true;
    }
    return false;
  }

  sendSubscribe(channels, withResume) {
    if (channels.length === 0) return;
    const op = { op: "subscribe", id: this.nextId++, channels };
    if (withResume) {
      const resume = {};
      for (const ch of channels) {
        const pos = this.positions.get(ch);
        if (pos) resume[ch] = pos;
      }
      if (Object.keys(resume).length > 0) op.resume = resume;
    }
    this.send(op);
  }

  /** Adds channels (subscribed now if connected, and on every reconnect). */
  subscribe(channels) {
    const fresh = channels.filter((ch) => !this.channels.has(ch));
    for (const ch of fresh) this.channels.add(ch);
    this.sendSubscribe(fresh, false);
  }

  unsubscribe(channels) {
    const held = channels.filter((ch) => this.channels.delete(ch));
    for (const ch of held) this.positions.delete(ch);
    if (held.length > 0) this.send({ op: "unsubscribe", id: this.nextId++, channels: held });
  }

  /** Starts `channel` over (a fresh snapshot): after a book mirror lost track. */
  restart(channel) {
    this.positions.delete(channel);
    if (this.send({ op: "unsubscribe", id: this.nextId++, channels: [channel] })) {
      this.send({ op: "subscribe", id: this.nextId++, channels: [channel] });
    }
  }
}
