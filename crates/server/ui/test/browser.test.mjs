// The dashboard in a real browser: Debian's Chromium (/usr/bin/chromium, or CHROMIUM) driven
// by playwright-core, which downloads no browser. Against a real gateway on the simulated
// market with `auth.required = true` (test/harness.mjs):
//
// - an anonymous visitor sees the login form and no data (no WebSocket, no instrument);
// - after logging in with a key: live data; the ladder's best bid/ask equal GET /v1/book at
//   the same seq; the candles canvas has candles drawn; no secret in storage, URL or a
//   script-readable cookie; no CSP violation;
// - a gateway restart is survived: the page reconnects (new single-use token, same cookie)
//   and resumes, with the new epoch;
// - the operator view signs its admin requests in the browser (no cookie sent), verifies the
//   audit chain and revokes a key.
//
// Screenshots go to ARTIFACTS (default target/ci-artifacts/dashboard); with DOCS_SCREENSHOT
// set, the market view is also written there (docs/dashboard.png).

import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { mkdirSync, copyFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { chromium } from "playwright-core";
import { chromiumArgs, makeDeployment, startGateway } from "./harness.mjs";

const ARTIFACTS = process.env.ARTIFACTS || new URL("../../../../target/ci-artifacts/dashboard/", import.meta.url).pathname;
mkdirSync(ARTIFACTS, { recursive: true });

let deployment;
let gateway;
let browser;
const cspViolations = [];

before(async () => {
  deployment = makeDeployment();
  gateway = await startGateway(deployment, { required: true });
  // playwright-core gives the browser a fresh --user-data-dir; each visitor below gets its
  // own context (no shared cookies).
  browser = await chromium.launch({
    executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
    args: chromiumArgs(),
    ignoreDefaultArgs: ["--headless"],
  });
});

after(async () => {
  await browser?.close();
  await gateway?.stop();
  deployment?.remove();
});

async function newPage() {
  const context = await browser.newContext({ viewport: { width: 1600, height: 1000 } });
  const page = await context.newPage();
  page.on("console", (m) => {
    if (/Content.Security.Policy/i.test(m.text())) cspViolations.push(m.text());
  });
  page.on("pageerror", (e) => cspViolations.push(`page error: ${e.message}`));
  return { context, page };
}

async function shot(page, name) {
  await page.screenshot({ path: join(ARTIFACTS, name) });
}

async function restBook(symbol = "BTC-USDT") {
  const response = await fetch(`${gateway.url}/v1/book?venue=sim&symbol=${symbol}&depth=1`, {
    headers: { Authorization: `Bearer ${deployment.viewer.token}` },
  });
  assert.equal(response.status, 200);
  return response.json();
}

const ladder = (page) =>
  page.evaluate(() => {
    const d = document.getElementById("ladder").dataset;
    return { live: d.live === "true", seq: d.seq ? Number(d.seq) : null, epoch: d.epoch, bid: d.bestBid, ask: d.bestAsk };
  });

test("an anonymous visitor of an auth.required gateway sees the login and no data", async () => {
  const { context, page } = await newPage();
  const sockets = [];
  page.on("websocket", (ws) => sockets.push(ws.url()));
  await page.goto(`${gateway.url}/`);
  await page.waitForSelector("#login:not([hidden])", { timeout: 10000 });
  await page.waitForTimeout(1500);
  assert.equal(await page.isVisible("#market"), false, "market view hidden");
  assert.equal(await page.locator("#instruments tbody tr").count(), 0, "no instrument listed");
  assert.equal(await page.locator("#ladder-bids td.px:not(:empty)").count(), 0, "no book level shown");
  assert.deepEqual(sockets, [], "no WebSocket opened");
  assert.match(await page.textContent("#who"), /not logged in/);
  await shot(page, "login.png");
  await context.close();
});

test("logged in: live data, ladder = GET /v1/book, candles drawn, no secret kept, then a restart survived", async () => {
  const { context, page } = await newPage();
  await page.goto(`${gateway.url}/ui/`);
  await page.waitForSelector("#login:not([hidden])");
  await page.fill("#login-form textarea[name=key]", deployment.viewer.token);
  await page.click("#login-form button[type=submit]");
  await page.waitForSelector("#market:not([hidden])", { timeout: 10000 });
  await page.waitForFunction(() => document.getElementById("conn").dataset.state === "live", null, { timeout: 10000 });
  await page.waitForFunction(() => document.getElementById("ladder").dataset.live === "true", null, { timeout: 10000 });
  await page.waitForFunction(() => document.querySelectorAll("#instruments tbody tr").length >= 6, null, { timeout: 10000 });
  // Tickers and venue status are live.
  await page.waitForFunction(() => [...document.querySelectorAll("#instruments tbody td.num")].some((td) => /\d/.test(td.textContent)), null, { timeout: 10000 });
  assert.equal(await page.getAttribute("#venues .venue[data-venue=sim]", "data-state"), "connected");

  // Nothing secret is left where script or a URL could reach it.
  const kept = await page.evaluate(() => ({
    local: localStorage.length,
    session: sessionStorage.length,
    cookie: document.cookie,
    url: location.href,
    field: document.querySelector("#login-form textarea").value,
  }));
  assert.deepEqual(kept, { local: 0, session: 0, cookie: "", url: `${gateway.url}/ui/`, field: "" });
  const cookies = await context.cookies();
  const session = cookies.find((c) => c.name === "tg_ui");
  assert.ok(session, "the session cookie is set");
  assert.equal(session.httpOnly, true);
  assert.equal(session.sameSite, "Strict");
  assert.equal(session.path, "/ui/");
  assert.ok(!session.value.includes(deployment.viewer.token));

  // The ladder's best bid/ask equal GET /v1/book at the same seq (within one update: the
  // REST answer is taken between two readings of the page).
  let compared = 0;
  for (let attempt = 0; attempt < 60 && compared < 3; attempt++) {
    const before = await ladder(page);
    const rest = await restBook();
    const afterwards = await ladder(page);
    for (const seen of [before, afterwards]) {
      if (seen.live && seen.seq === rest.seq && seen.epoch === rest.epoch) {
        assert.equal(seen.bid, rest.bids[0][0], `best bid at seq ${rest.seq}`);
        assert.equal(seen.ask, rest.asks[0][0], `best ask at seq ${rest.seq}`);
        compared++;
        break;
      }
    }
    assert.ok(Math.abs((afterwards.seq ?? 0) - rest.seq) <= 3, `page seq ${afterwards.seq} far from REST seq ${rest.seq}`);
    await page.waitForTimeout(50);
  }
  assert.ok(compared >= 3, `ladder and REST met at the same seq only ${compared} times`);

  // Candles: switch to 1s, wait for a few buckets, and look for candle pixels.
  await page.click("#intervals button[data-interval='1s']");
  await page.waitForFunction(() => globalThis.tickgate.bars() >= 2, null, { timeout: 15000 });
  await page.waitForTimeout(1500);
  const pixels = await page.evaluate(() => {
    const colours = [[0x26, 0xa6, 0x9a], [0xef, 0x53, 0x50]];
    let candle = 0;
    let canvases = 0;
    for (const canvas of document.querySelectorAll("#chart canvas")) {
      canvases++;
      const ctx = canvas.getContext("2d");
      if (!ctx || canvas.width === 0) continue;
      const data = ctx.getImageData(0, 0, canvas.width, canvas.height).data;
      for (let i = 0; i < data.length; i += 4) {
        if (colours.some(([r, g, b]) => Math.abs(data[i] - r) < 8 && Math.abs(data[i + 1] - g) < 8 && Math.abs(data[i + 2] - b) < 8)) candle++;
      }
    }
    return { candle, canvases };
  });
  assert.ok(pixels.canvases > 0, "the chart has canvases");
  assert.ok(pixels.candle > 50, `only ${pixels.candle} candle-coloured pixels`);
  assert.equal(await page.evaluate(() => globalThis.tickgate.bookErrors()), 0, "no book mirror error");
  await shot(page, "market.png");
  if (process.env.DOCS_SCREENSHOT) copyFileSync(join(ARTIFACTS, "market.png"), process.env.DOCS_SCREENSHOT);
  writeFileSync(join(ARTIFACTS, "render-stats.json"), JSON.stringify(await page.evaluate(() => globalThis.tickgate.renderStats()), null, 1));

  // Restart the gateway on the same port and data directory: the page reconnects with a new
  // token (the cookie's session key derives from the master key, so it is still valid).
  const beforeRestart = await ladder(page);
  await gateway.stop();
  await page.waitForFunction(() => ["reconnecting", "connecting"].includes(document.getElementById("conn").dataset.state), null, { timeout: 10000 });
  await shot(page, "restart-down.png");
  gateway = await startGateway(deployment, { port: gateway.port, required: true });
  await page.waitForFunction(() => document.getElementById("conn").dataset.state === "live" && Number(document.getElementById("conn").dataset.reconnects) >= 1, null, { timeout: 20000 });
  await page.waitForFunction((epoch) => {
    const d = document.getElementById("ladder").dataset;
    return d.live === "true" && d.epoch && d.epoch !== epoch;
  }, beforeRestart.epoch, { timeout: 15000 });
  const first = await ladder(page);
  await page.waitForFunction((seq) => Number(document.getElementById("ladder").dataset.seq) > seq, first.seq, { timeout: 15000 });
  const conn = await page.evaluate(() => globalThis.tickgate.connection());
  assert.equal(conn.state, "live");
  assert.ok(conn.reconnects >= 1);
  assert.ok(conn.lost >= 1, "the new epoch started channels over (resume lost)");
  assert.match(await page.textContent("#conn"), /reconnected/);
  const rest = await restBook();
  assert.equal(rest.epoch, (await ladder(page)).epoch, "the page follows the restarted gateway's epoch");
  await shot(page, "restart-up.png");
  await context.close();
});

test("the operator view signs every admin request in the browser and revokes a key", async () => {
  const { context, page } = await newPage();
  const adminRequests = [];
  page.on("request", (r) => {
    if (new URL(r.url()).pathname.startsWith("/admin/")) adminRequests.push({ method: r.method(), headers: r.headers() });
  });
  page.on("dialog", (d) => d.accept("revoked by the browser test"));
  await page.goto(`${gateway.url}/ui/#operator`);
  await page.waitForSelector("#operator:not([hidden])");
  await page.fill("#op-key input[name=key_id]", deployment.ops.id);
  await page.selectOption("#op-key select[name=kind]", "ed25519");
  await page.fill("#op-key textarea[name=key]", deployment.ops.pem);
  await page.click("#op-key button[type=submit]");
  await page.waitForSelector(`#op-keys tr[data-key=${deployment.spare.id}]`, { timeout: 10000 });
  assert.equal(await page.inputValue("#op-key textarea[name=key]"), "", "the pasted key is cleared");
  await page.waitForFunction(() => document.querySelector("#op-audit .verify").dataset.ok === "true", null, { timeout: 10000 });
  assert.match(await page.textContent("#op-audit .verify"), /chain verified in this browser/);
  await page.click(`#op-keys tr[data-key=${deployment.spare.id}] button[data-action=revoke]`);
  await page.waitForFunction((id) => document.querySelector(`#op-keys tr[data-key=${id}] td.status`)?.textContent === "revoked", deployment.spare.id, { timeout: 10000 });
  // The gateway agrees, and the revocation is in the audit log the page shows.
  const refused = await fetch(`${gateway.url}/v1/instruments`, { headers: { Authorization: `Bearer ${deployment.spare.token}` } });
  assert.equal(refused.status, 401);
  await page.waitForFunction(() => [...document.querySelectorAll("#op-audit td")].some((td) => td.textContent === "key.revoked"), null, { timeout: 10000 });
  await page.click(`#op-keys tr[data-key=${deployment.viewer.id}] td:first-child`);
  await page.waitForFunction(() => /Usage of key_/.test(document.getElementById("op-usage-title").textContent), null, { timeout: 10000 });
  await shot(page, "operator.png");
  assert.ok(adminRequests.length >= 4, `${adminRequests.length} admin requests`);
  for (const r of adminRequests) {
    assert.ok(r.headers["signature-input"] && r.headers.signature, `${r.method} signed`);
    assert.equal(r.headers.cookie, undefined, "no cookie on admin requests");
    assert.equal(r.headers.authorization, undefined, "no bearer token on admin requests");
  }
  await context.close();
});

test("no Content-Security-Policy violation or page error happened", () => {
  assert.deepEqual(cspViolations, []);
});
