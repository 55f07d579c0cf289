// Dashboard benchmark (docs/benchmarks.md, "Dashboard"):
//
// 1. Gateway CPU per client: the WebSocket (and REST) traffic of N dashboard tabs, replayed by
//    the page's own modules (js/conn.js: cookie login, session, ws-token, subscribe with the
//    page's channels, resume), against N SDK clients (`tickgate tail`, crates/client) on the
//    same channels, in the same run, each after an idle baseline. The gateway's CPU time is
//    read from /proc/<pid>/stat, apart from the load generators'.
// 2. Render work per update in Chromium (Performance API): the page's own counters
//    (`tickgate.renderStats()`: message handling + rendering per data update), plus the frame
//    intervals and long tasks of the whole main thread (chart painting included).
//
// Usage: TICKGATE_BIN=target/release/tickgate node --experimental-websocket bench.mjs
//   CLIENTS=50 SECONDS=20 SIM_RATE=<events/s per symbol; unset: the sim's default>
//   PARTS=clients,render (either or both)
// Prints a JSON report; nothing is asserted (timings are not tests).

import { spawn } from "node:child_process";
import { readFileSync } from "node:fs";
import { chromium } from "playwright-core";
import { Connection } from "../js/conn.js";
import { chromiumArgs, makeDeployment, startGateway } from "./harness.mjs";

const CLIENTS = Number(process.env.CLIENTS || 50);
const SECONDS = Number(process.env.SECONDS || 20);
const SIM_RATE = process.env.SIM_RATE;
/** Which parts to run: `clients`, `render`, or both (default). */
const PARTS = (process.env.PARTS || "clients,render").split(",");
const TICK = 100; // clock ticks per second (getconf CLK_TCK on Linux)

function cpuSeconds(pid) {
  const fields = readFileSync(`/proc/${pid}/stat`, "utf8").split(") ")[1].split(" ");
  return (Number(fields[11]) + Number(fields[12])) / TICK;
}

async function metric(url, name) {
  const text = await (await fetch(`${url}/metrics`)).text();
  let total = 0;
  for (const line of text.split("\n")) if (line.startsWith(name)) total += Number(line.split(" ").at(-1));
  return total;
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** Gateway CPU seconds and messages delivered over SECONDS. */
async function measure(gateway) {
  const cpu0 = cpuSeconds(gateway.pid);
  const out0 = await metric(gateway.url, "tickgate_messages_out_total");
  await sleep(SECONDS * 1000);
  const cpu = cpuSeconds(gateway.pid) - cpu0;
  const messages = (await metric(gateway.url, "tickgate_messages_out_total")) - out0;
  return { cpuSeconds: cpu, messagesPerSec: messages / SECONDS };
}

/** The channels one dashboard tab holds (js/market.js with BTC-USDT chosen, 1m candles). */
function pageChannels(instruments) {
  const venues = [...new Set(instruments.map((i) => i.venue))];
  const symbols = [...new Set(instruments.map((i) => i.symbol))];
  return [
    ...venues.map((v) => `status:${v}`),
    ...instruments.map((i) => `ticker:${i.venue}:${i.symbol}`),
    ...symbols.map((s) => `ticker:all:${s}`),
    "book:sim:BTC-USDT",
    "trades:sim:BTC-USDT",
    "candles.1m:sim:BTC-USDT",
    "book:all:BTC-USDT",
  ];
}

/** One tab's traffic: what js/app.js and js/market.js send, through the same modules. */
async function openTab(url, token, channels) {
  const origin = { Origin: url };
  const login = await fetch(`${url}/ui/api/login`, { method: "POST", headers: { ...origin, Authorization: `Bearer ${token}` } });
  if (login.status !== 200) throw new Error(`login: ${login.status}`);
  const cookie = login.headers.get("set-cookie").split(";")[0];
  const session = await (await fetch(`${url}/ui/api/session`, { headers: { Cookie: cookie } })).json();
  await fetch(`${url}/ui/api/instruments`, { headers: { Cookie: cookie } });
  await fetch(`${url}/ui/api/candles?venue=sim&symbol=BTC-USDT&interval=1m&order=desc&limit=500`, { headers: { Cookie: cookie } });
  await fetch(`${url}/ui/api/trades?venue=sim&symbol=BTC-USDT&order=desc&limit=40`, { headers: { Cookie: cookie } });
  let messages = 0;
  const conn = new Connection({
    url: `${url.replace("http", "ws")}/v1/ws`,
    getToken: async () => {
      const r = await fetch(`${url}/ui/api/ws-token`, { method: "POST", headers: { ...origin, Cookie: cookie, "X-CSRF-Token": session.session.csrf } });
      return (await r.json()).token;
    },
    onMessage: () => messages++,
  });
  conn.subscribe(channels);
  conn.start();
  return { conn, messages: () => messages };
}

async function clientsBench(deployment, gateway) {
  const instruments = (await (await fetch(`${gateway.url}/v1/instruments`, { headers: { Authorization: `Bearer ${deployment.viewer.token}` } })).json()).instruments;
  const channels = pageChannels(instruments);
  await sleep(2000);
  const idle = await measure(gateway);

  const tabs = [];
  for (let i = 0; i < CLIENTS; i++) tabs.push(await openTab(gateway.url, deployment.viewer.token, channels));
  await sleep(3000);
  const page = await measure(gateway);
  for (const t of tabs) t.conn.stop();
  await sleep(2000);

  const sdk = [];
  for (let i = 0; i < CLIENTS; i++) {
    sdk.push(
      spawn(process.env.TICKGATE_BIN, ["tail", "--url", gateway.url, "--json", ...channels], {
        env: { ...process.env, TICKGATE_API_KEY: deployment.viewer.token, TICKGATE_LOG__LEVEL: "error" },
        stdio: ["ignore", "ignore", "ignore"],
      }),
    );
  }
  await sleep(3000);
  const sdkRun = await measure(gateway);
  for (const c of sdk) c.kill("SIGTERM");
  await sleep(1000);

  const perClient = (run) => ((run.cpuSeconds - idle.cpuSeconds) / SECONDS / CLIENTS) * 1e6; // µs of CPU per second per client
  return {
    channelsPerClient: channels.length,
    idle: { cpuPerSec: idle.cpuSeconds / SECONDS },
    page: { ...page, cpuUsPerClientPerSec: perClient(page) },
    sdk: { ...sdkRun, cpuUsPerClientPerSec: perClient(sdkRun) },
    pageOverSdk: perClient(page) / perClient(sdkRun),
  };
}

async function renderBench(deployment, gateway) {
  const browser = await chromium.launch({ executablePath: process.env.CHROMIUM || "/usr/bin/chromium", args: chromiumArgs(), ignoreDefaultArgs: ["--headless"] });
  try {
    const page = await (await browser.newContext({ viewport: { width: 1600, height: 1000 } })).newPage();
    await page.goto(`${gateway.url}/ui/`);
    await page.fill("#login-form textarea[name=key]", deployment.viewer.token);
    await page.click("#login-form button[type=submit]");
    await page.waitForFunction(() => document.getElementById("ladder").dataset.live === "true", null, { timeout: 15000 });
    await sleep(5000);
    await page.evaluate(() => {
      globalThis.tickgate.resetRenderStats();
      const intervals = [];
      let last = performance.now();
      const frame = (t) => {
        intervals.push(t - last);
        last = t;
        globalThis.__bench.raf = requestAnimationFrame(frame);
      };
      const longTasks = [];
      const observer = new PerformanceObserver((list) => list.getEntries().forEach((e) => longTasks.push(e.duration)));
      observer.observe({ type: "longtask", buffered: false });
      globalThis.__bench = { intervals, longTasks, raf: requestAnimationFrame(frame) };
    });
    await sleep(SECONDS * 1000);
    return await page.evaluate(() => {
      const { intervals, longTasks } = globalThis.__bench;
      const sorted = intervals.slice(1).sort((a, b) => a - b);
      const q = (f) => sorted[Math.min(sorted.length - 1, Math.floor(f * sorted.length))];
      const measures = performance.getEntriesByName("tickgate-render");
      return {
        page: globalThis.tickgate.renderStats(),
        frames: sorted.length,
        frameIntervalMs: { p50: q(0.5), p99: q(0.99), max: sorted.at(-1) },
        longTasks: { count: longTasks.length, maxMs: longTasks.length ? Math.max(...longTasks) : 0 },
        performanceMeasures: measures.length,
      };
    });
  } finally {
    await browser.close();
  }
}

const deployment = makeDeployment();
// One key for every client: lift its request rate and connection cap for the run.
const extraEnv = { TICKGATE_AUTH__RATE_LIMIT__PER_SEC: "100000", TICKGATE_AUTH__RATE_LIMIT__BURST: "100000", TICKGATE_AUTH__WS_MAX_CONNECTIONS_PER_KEY: "1000" };
const args = SIM_RATE ? ["--sim-rate", SIM_RATE] : [];
const gateway = await startGateway(deployment, { required: true, extraEnv, args });
try {
  const report = {
    date: new Date().toISOString(),
    cores: (await import("node:os")).cpus().length,
    clients: CLIENTS,
    seconds: SECONDS,
    simRate: SIM_RATE || "default",
    binary: process.env.TICKGATE_BIN,
    gatewayCpu: PARTS.includes("clients") ? await clientsBench(deployment, gateway) : null,
    render: PARTS.includes("render") ? await renderBench(deployment, gateway) : null,
  };
  console.log(JSON.stringify(report, null, 2));
} finally {
  await gateway.stop();
  deployment.remove();
}
