// The operator view (scope keys:admin). Every request, reads included, goes to the ordinary
// admin API and is signed here with the operator's own key (RFC 9421, WebCrypto, sign.js):
// the gateway verifies it like any admin request (signatures only, nonces, window, audit).
// Nothing signs on the page's behalf, the session cookie plays no part, and the key is a
// non-extractable CryptoKey in this page's memory only, forgotten after KEY_LIFETIME_MS, on
// "Forget key", on reload, or when the tab closes.

import { importSigningKey, signRequest } from "./sign.js";
import { verifyTail } from "./audit.js";

export const KEY_LIFETIME_MS = 15 * 60 * 1000;
const REFRESH_MS = 5000;
const AUDIT_TAIL = 50;

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

function when(micros) {
  if (!micros) return "–";
  return new Date(micros / 1000).toISOString().replace("T", " ").slice(0, 19);
}

function ago(micros, now) {
  if (!micros) return "never";
  const s = Math.max(0, Math.round((now - micros) / 1e6));
  if (s < 90) return `${s} s ago`;
  if (s < 5400) return `${Math.round(s / 60)} min ago`;
  return `${Math.round(s / 3600)} h ago`;
}

export class OperatorView {
  constructor(root) {
    this.root = root;
    this.key = null;
    this.timer = null;
    this.forgetTimer = null;
    this.selectedKey = null;
    this.form = root.querySelector("#op-key");
    this.status = root.querySelector("#op-status");
    this.form.addEventListener("submit", (e) => {
      e.preventDefault();
      this.useKey();
    });
    root.querySelector("#op-forget").addEventListener("click", () => this.forget("forgotten"));
  }

  async useKey() {
    const data = new FormData(this.form);
    const keyId = String(data.get("key_id") || "").trim();
    const kind = String(data.get("kind"));
    const text = String(data.get("key") || "");
    // The pasted key leaves the form at once, whatever happens next.
    this.form.elements.key.value = "";
    if (!/^key_[A-Za-z0-9]{1,60}$/.test(keyId)) {
      this.say("error", "the key id looks like key_… (tickgate keys list)");
      return;
    }
    try {
      const cryptoKey = await importSigningKey(kind, text);
      this.key = { keyId, kind, cryptoKey, until: Date.now() + KEY_LIFETIME_MS };
    } catch (error) {
      this.say("error", error.message);
      return;
    }
    clearTimeout(this.forgetTimer);
    this.forgetTimer = setTimeout(() => this.forget("expired: import it again to continue"), KEY_LIFETIME_MS);
    this.root.dataset.key = "held";
    this.say("ok", `signing as ${keyId} (${kind}) until ${new Date(this.key.until).toLocaleTimeString()}; the key cannot be read back`);
    await this.refresh();
    clearInterval(this.timer);
    this.timer = setInterval(() => this.refresh(), REFRESH_MS);
  }

  forget(why) {
    this.key = null;
    clearInterval(this.timer);
    clearTimeout(this.forgetTimer);
    this.root.dataset.key = "none";
    this.say("idle", `no key held (${why})`);
  }

  say(kind, text) {
    this.status.dataset.kind = kind;
    this.status.textContent = text;
  }

  /** A signed admin request; returns the parsed JSON or throws {code, message}. */
  async admin(method, path, { query = null, body = null } = {}) {
    if (!this.key) throw Object.assign(new Error("no key held"), { code: "no_key" });
    const text = body === null ? null : JSON.stringify(body);
    const headers = await signRequest({
      method,
      authority: location.host,
      path,
      query,
      body: text,
      keyId: this.key.keyId,
      kind: this.key.kind,
      key: this.key.cryptoKey,
    });
    if (text !== null) headers["Content-Type"] = "application/json";
    const url = query ? `${path}?${query}` : path;
    const response = await fetch(url, { method, headers, body: text, credentials: "omit", cache: "no-store" });
    const answer = await response.json().catch(() => null);
    if (!response.ok) {
      throw Object.assign(new Error(answer?.message || `HTTP ${response.status}`), { code: answer?.code || `http_${response.status}` });
    }
    return answer;
  }

  async refresh() {
    if (!this.key) return;
    try {
      const [keys, overview] = await Promise.all([this.admin("GET", "/admin/v1/keys"), this.admin("GET", "/admin/v1/overview")]);
      this.renderKeys(keys.keys, overview);
      this.renderRejections(overview.rejections);
      await this.renderAudit(overview.audit_head);
      if (this.selectedKey) await this.renderUsage(this.selectedKey);
      this.root.querySelector("#op-alerts").textContent =
        "Alert deliveries: this gateway has no alert routes yet (the alerts:write scope is reserved).";
    } catch (error) {
      this.say("error", `${error.code}: ${error.message}`);
      if (["unknown_key", "key_revoked", "key_expired", "insufficient_scope", "signature_invalid", "wrong_key_type"].includes(error.code)) {
        this.forget(error.code);
      }
    }
  }

  renderKeys(keys, overview) {
    const now = overview.now;
    const sessions = new Map(overview.sessions.map((s) => [s.key_id, s]));
    const byId = new Map(keys.map((k) => [k.id, k]));
    const rows = keys.map((k) => {
      let rotation = "–";
      if (k.status === "grace") {
        const successor = byId.get(k.replaced_by);
        const used = successor && k.last_used_at && k.last_used_at > successor.created_at;
        rotation = `rotating out until ${when(k.grace_until)}; ${used ? `old key still used (${ago(k.last_used_at, now)})` : "quiet since the rotation"}`;
      } else if (k.replaces) {
        rotation = `replaces ${k.replaces}`;
      }
      if (k.rotation_due) rotation += " · rotation due";
      const s = sessions.get(k.id);
      const actions = el("td", { class: "actions" });
      if (k.status === "active" || k.status === "grace") {
        actions.append(el("button", { "data-action": "revoke", text: "Revoke", onclick: () => this.revoke(k) }));
      }
      if (k.status === "active") {
        actions.append(el("button", { "data-action": "rotate", text: "Rotate", onclick: () => this.rotate(k) }));
      }
      if (k.status === "grace") {
        actions.append(el("button", { "data-action": "cancel", text: "Cancel rotation", onclick: () => this.cancelRotation(k) }));
      }
      return el(
        "tr",
        { "data-key": k.id, class: `status-${k.status}`, onclick: (e) => e.target.tagName !== "BUTTON" && this.selectKey(k.id) },
        el("td", { text: k.id }),
        el("td", { text: k.name }),
        el("td", { text: k.type }),
        el("td", { class: "status", text: k.status }),
        el("td", { text: k.scopes.join(" ") }),
        el("td", { text: k.expires_at ? when(k.expires_at) : "never" }),
        el("td", { text: rotation }),
        el("td", { text: `${ago(k.last_used_at, now)}${k.last_used_addr ? ` from ${k.last_used_addr}` : ""}` }),
        el("td", { class: "num", text: s ? `${s.connections} (${s.subscriptions} ch)` : "0" }),
        actions,
      );
    });
    this.root.querySelector("#op-keys tbody").replaceChildren(...rows);
    this.root.querySelector("#op-summary").textContent = `${overview.keys} keys · ${overview.connections_open} open WebSocket connections · ${overview.sessions.length} keys with live sessions`;
  }

  renderRejections(rejections) {
    const byCode = new Map();
    for (const r of rejections) byCode.set(r.code, (byCode.get(r.code) || 0) + r.count);
    const rows = [...byCode.entries()]
      .sort((a, b) => b[1] - a[1])
      .map(([code, n]) => {
        const keys = rejections.filter((r) => r.code === code).map((r) => `${r.key}: ${r.count}`).join(", ");
        return el("tr", { "data-code": code }, el("td", { text: code }), el("td", { class: "num", text: String(n) }), el("td", { text: keys }));
      });
    this.root.querySelector("#op-rejections tbody").replaceChildren(...rows);
  }

  async renderAudit(head) {
    const box = this.root.querySelector("#op-audit");
    const state = box.querySelector(".verify");
    if (!head) {
      state.textContent = "empty log";
      box.querySelector("tbody").replaceChildren();
      return;
    }
    const after = Math.max(0, head.seq - AUDIT_TAIL);
    const page = await this.admin("GET", "/admin/v1/audit", { query: `after=${after}&limit=${AUDIT_TAIL}` });
    const result = await verifyTail(page.entries, page.head);
    state.dataset.ok = String(result.ok);
    state.textContent = result.ok
      ? `chain verified in this browser: entries ${after + 1}–${page.head.seq}, head ${page.head.hash.slice(0, 16)}…`
      : `CHAIN BROKEN at entry ${result.seq}: ${result.reason}`;
    const rows = [...page.entries].reverse().map((e) =>
      el("tr", {}, el("td", { class: "num", text: String(e.seq) }), el("td", { text: when(e.at) }), el("td", { text: e.actor }), el("td", { text: e.action }), el("td", { text: e.key_id || "" }), el("td", { class: "detail", text: e.detail })),
    );
    box.querySelector("tbody").replaceChildren(...rows);
  }

  async selectKey(id) {
    this.selectedKey = id;
    await this.renderUsage(id).catch((error) => this.say("error", `${error.code}: ${error.message}`));
  }

  async renderUsage(id) {
    const usage = await this.admin("GET", `/admin/v1/keys/${id}/usage`, { query: "granularity=minute" });
    this.root.querySelector("#op-usage-title").textContent = `Usage of ${id}, per minute, last 24 h (last used ${usage.last_used_at ? when(usage.last_used_at) : "never"})`;
    const canvas = this.root.querySelector("#op-usage canvas");
    const ctx = canvas.getContext("2d");
    const ratio = globalThis.devicePixelRatio || 1;
    canvas.width = Math.round(canvas.clientWidth * ratio);
    canvas.height = Math.round(canvas.clientHeight * ratio);
    ctx.clearRect(0, 0, canvas.width, canvas.height);
    const buckets = usage.buckets;
    if (buckets.length === 0) return;
    const max = Math.max(1, ...buckets.map((b) => b.requests + b.messages));
    // The last 24 h, one bar per minute.
    const span = 24 * 3600e6 + 60e6;
    const t0 = Date.now() * 1000 - 24 * 3600e6;
    const bw = Math.max(2 * ratio, (canvas.width * 60e6) / span);
    for (const b of buckets) {
      const x = ((b.start - t0) / span) * canvas.width;
      const h = ((b.requests + b.messages) / max) * (canvas.height - 4);
      ctx.fillStyle = b.auth_failures > 0 ? "#ef5350" : "#4f8cc9";
      ctx.fillRect(x, canvas.height - h, bw, h);
    }
  }

  async revoke(k) {
    const reason = prompt(`Revoke ${k.id} (${k.name}) now? Its WebSocket sessions close within a second. Reason:`);
    if (!reason) return;
    await this.act(() => this.admin("POST", `/admin/v1/keys/${k.id}/revoke`, { body: { reason } }), `revoked ${k.id}`);
  }

  async rotate(k) {
    const grace = prompt(`Rotate ${k.id}: grace period in seconds for the old key`, "86400");
    if (grace === null) return;
    const seconds = Number(grace);
    if (!Number.isInteger(seconds) || seconds < 0) {
      this.say("error", "the grace period is a whole number of seconds");
      return;
    }
    if (k.type === "ed25519") {
      this.say("error", "rotating an ed25519 key needs the successor's public key: use tickgate keys rotate --public-key");
      return;
    }
    const answer = await this.act(() => this.admin("POST", `/admin/v1/keys/${k.id}/rotate`, { body: { grace_seconds: seconds } }), `rotated ${k.id}`);
    if (answer) {
      // Shown once, like the CLI does; not kept anywhere.
      const secret = answer.token || answer.secret;
      this.root.querySelector("#op-once").textContent = `successor ${answer.id}: ${secret} (shown once: copy it now)`;
    }
  }

  async cancelRotation(k) {
    await this.act(() => this.admin("POST", `/admin/v1/keys/${k.id}/rotate/cancel`), `rotation of ${k.id} cancelled`);
  }

  async act(run, done) {
    try {
      const answer = await run();
      this.say("ok", done);
      await this.refresh();
      return answer;
    } catch (error) {
      this.say("error", `${error.code}: ${error.message}`);
      return null;
    }
  }
}
