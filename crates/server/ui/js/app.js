// The dashboard page: decides what the visitor may see (GET /ui/api/session), logs in once
// with a key (then forgets it: only the HttpOnly session cookie remains), and runs the market
// and operator views. No long-lived secret is ever kept in the page, localStorage, a cookie
// script can read, or a URL.

import { ApiError, getJSON, postJSON } from "./api.js";
import { Connection } from "./conn.js";
import { MarketView } from "./market.js";
import { OperatorView } from "./operator.js";
import { importSigningKey, signRequest } from "./sign.js";

const $ = (id) => document.getElementById(id);

const page = {
  session: null,
  authRequired: false,
  conn: null,
  market: null,
  operator: null,
  metricsTimer: null,
  lastAuthBoot: 0,
};

function show(id, visible) {
  $(id).hidden = !visible;
}

function setConnState(state, info) {
  const pill = $("conn");
  pill.dataset.state = state;
  pill.dataset.reconnects = String(info.reconnects ?? 0);
  const labels = {
    connecting: "connecting…",
    live: info.reconnects ? `live · reconnected ${info.reconnects}×` : "live",
    reconnecting: `reconnecting (attempt ${info.attempt ?? 1})…`,
    auth_failed: `signed out (${info.code || "auth"})`,
    closed: "offline",
  };
  pill.textContent = labels[state] || state;
  pill.title = `resumed channels: ${info.recovered ?? 0} recovered exactly, ${info.lost ?? 0} started over`;
  // The session may have ended (revoked key, expiry): ask again what to show. Not more than
  // once per 10 s, so a refusal the session cannot fix (e.g. too many connections for the
  // key) does not become a reconnect loop.
  if (state === "auth_failed" && Date.now() - page.lastAuthBoot > 10000) {
    page.lastAuthBoot = Date.now();
    boot(info.code);
  }
}

async function wsToken() {
  if (!page.session) return null; // anonymous, where the deployment allows it
  try {
    const answer = await postJSON("/ui/api/ws-token", { headers: { "X-CSRF-Token": page.session.csrf } });
    return answer.token;
  } catch (error) {
    if (error instanceof ApiError && (error.auth || error.code === "csrf_rejected")) {
      throw Object.assign(error, { auth: true });
    }
    throw error;
  }
}

function stopMarket() {
  if (page.conn) page.conn.stop();
  if (page.market) page.market.stop();
  clearInterval(page.metricsTimer);
  page.conn = null;
  page.market = null;
}

/** Mean venue lag over the last poll from tickgate_venue_lag_* (WebSocket venues only). */
function lagPoller() {
  let previous = new Map();
  return async () => {
    let text;
    try {
      const response = await fetch("/metrics", { credentials: "omit", cache: "no-store" });
      if (!response.ok) return;
      text = await response.text();
    } catch {
      return;
    }
    const read = (name) => {
      const out = new Map();
      const re = new RegExp(`^${name}\\{venue="([^"]+)"\\} (\\d+)$`, "gm");
      for (const m of text.matchAll(re)) out.set(m[1], Number(m[2]));
      return out;
    };
    const sums = read("tickgate_venue_lag_microseconds_sum");
    const counts = read("tickgate_venue_lag_count");
    const lag = new Map();
    for (const [venue, sum] of sums) {
      const count = counts.get(venue) || 0;
      const before = previous.get(venue);
      const dn = before ? count - before.count : count;
      const ds = before ? sum - before.sum : sum;
      if (dn > 0) lag.set(venue, ds / dn);
      previous.set(venue, { sum, count });
    }
    if (page.market && lag.size > 0) page.market.setMetricLag(lag);
  };
}

async function startMarket() {
  stopMarket();
  const scheme = location.protocol === "https:" ? "wss" : "ws";
  const conn = new Connection({
    url: `${scheme}://${location.host}/v1/ws`,
    getToken: wsToken,
    onMessage: (msg) => page.market && page.market.onMessage(msg),
    onState: setConnState,
  });
  page.conn = conn;
  page.market = new MarketView($("market"), conn);
  conn.start();
  await page.market.start();
  const poll = lagPoller();
  poll();
  page.metricsTimer = setInterval(poll, 5000);
}

function renderWho() {
  const who = $("who");
  if (page.session) {
    who.textContent = `${page.session.key_id} · until ${new Date(page.session.expires_at / 1000).toLocaleTimeString()}`;
  } else {
    who.textContent = page.authRequired ? "not logged in" : "anonymous (public market data)";
  }
  show("logout", !!page.session);
  show("open-login", !page.session && !page.authRequired);
}

/** Decides what to show from the session state. */
async function boot(reason) {
  let state;
  try {
    state = await getJSON("/ui/api/session");
  } catch (error) {
    $("login-error").textContent = `cannot reach the gateway: ${error.message}`;
    show("login", true);
    return;
  }
  page.session = state.session;
  page.authRequired = state.auth_required;
  renderWho();
  const why = reason || state.reason;
  if (!page.session && page.authRequired) {
    // No market data without a session; the operator view signs its own requests.
    stopMarket();
    selectView(currentView());
    $("login-error").textContent = why ? `log in again (${why})` : "";
    return;
  }
  selectView(currentView());
  await startMarket();
}

async function login(event) {
  event.preventDefault();
  const form = $("login-form");
  const data = new FormData(form);
  const kind = String(data.get("kind"));
  const text = String(data.get("key") || "");
  const keyId = String(data.get("key_id") || "").trim();
  // The key leaves the form (and this function's reach) right away.
  form.elements.key.value = "";
  $("login-error").textContent = "";
  try {
    let headers;
    if (kind === "bearer") {
      if (!text.trim()) throw new Error("paste the key (tg_…)");
      headers = { Authorization: `Bearer ${text.trim()}` };
    } else {
      const key = await importSigningKey(kind, text);
      headers = await signRequest({ method: "POST", authority: location.host, path: "/ui/api/login", keyId, kind, key });
    }
    await postJSON("/ui/api/login", { headers });
  } catch (error) {
    $("login-error").textContent = error.code ? `${error.code}: ${error.message}` : error.message;
    return;
  }
  await boot();
}

async function logout() {
  try {
    await postJSON("/ui/api/logout", { headers: { "X-CSRF-Token": page.session?.csrf || "" } });
  } finally {
    page.session = null;
    stopMarket();
    await boot();
  }
}

function currentView() {
  return location.hash === "#operator" ? "operator" : "market";
}

function selectView(view) {
  for (const tab of document.querySelectorAll("nav .tab")) tab.classList.toggle("active", tab.dataset.view === view);
  const allowed = !!page.session || !page.authRequired;
  show("market", view === "market" && allowed);
  show("login", view === "market" && !allowed);
  show("operator", view === "operator");
}

function init() {
  $("login-form").addEventListener("submit", login);
  $("logout").addEventListener("click", logout);
  $("open-login").addEventListener("click", () => {
    show("market", false);
    show("login", true);
  });
  $("login-kind").addEventListener("change", (e) => {
    $("login-form").dataset.kind = e.target.value;
  });
  for (const tab of document.querySelectorAll("nav .tab")) {
    tab.addEventListener("click", () => {
      location.hash = tab.dataset.view === "operator" ? "#operator" : "";
      selectView(tab.dataset.view);
    });
  }
  page.operator = new OperatorView($("operator"));
  // For the browser test and the render benchmark: read-only numbers, no secrets.
  globalThis.tickgate = {
    renderStats: () => page.market?.stats.summary() ?? null,
    resetRenderStats: () => page.market?.stats.reset(),
    connection: () =>
      page.conn && { state: page.conn.state, reconnects: page.conn.reconnects, recovered: page.conn.recovered, lost: page.conn.lost },
    bars: () => page.market?.bars ?? 0,
    bookErrors: () => page.market?.bookErrors ?? 0,
  };
  boot();
}

init();
