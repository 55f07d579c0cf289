// Starts real gateways for the live and browser tests: the `tickgate` binary (TICKGATE_BIN),
// a fresh data directory, a master key, keys made offline with `tickgate keys create` as an
// operator would, and `tickgate serve` on a free loopback port. Every process started here is
// stopped by `stop()` (and on exit).

import { spawn, execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { createServer } from "node:net";
import { randomBytes } from "node:crypto";
import { tmpdir } from "node:os";
import { join } from "node:path";

const children = new Set();
process.on("exit", () => {
  for (const child of children) child.kill("SIGKILL");
});

export function binary() {
  const bin = process.env.TICKGATE_BIN;
  if (!bin) throw new Error("TICKGATE_BIN is not set (the tickgate binary to test)");
  return bin;
}

export async function freePort() {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const { port } = server.address();
      server.close(() => resolve(port));
    });
  });
}

/** A data directory with a master key and the keys the tests use. */
export function makeDeployment() {
  const dir = mkdtempSync(join(tmpdir(), "tickgate-dash-"));
  const masterKey = randomBytes(32).toString("hex");
  const env = { ...process.env, TICKGATE_MASTER_KEY: masterKey };
  const keys = (args) => JSON.parse(execFileSync(binary(), ["keys", "create", "--data-dir", dir, "--json", ...args], { env }).toString());
  const viewer = keys(["--name", "viewer", "--scopes", "market:read,history:read"]);
  const spare = keys(["--name", "spare", "--scopes", "market:read"]);
  const opsPem = join(dir, "ops.pem");
  const ops = keys(["--name", "ops", "--scopes", "keys:admin", "--type", "ed25519", "--generate-keypair", opsPem]);
  const hmac = keys(["--name", "ops-hmac", "--scopes", "keys:admin,market:read", "--type", "hmac"]);
  return {
    dir,
    masterKey,
    viewer: { id: viewer.id, token: viewer.token },
    spare: { id: spare.id, token: spare.token },
    ops: { id: ops.id, pem: readFileSync(opsPem, "utf8"), pemPath: opsPem },
    hmac: { id: hmac.id, secret: hmac.secret },
    remove() {
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** Starts `tickgate serve` on `deployment`; resolves when /readyz answers 200. */
export async function startGateway(deployment, { port, required = true, extraEnv = {}, args = [] } = {}) {
  port = port ?? (await freePort());
  const env = {
    ...process.env,
    TICKGATE_MASTER_KEY: deployment.masterKey,
    TICKGATE_AUTH__REQUIRED: String(required),
    TICKGATE_LOG__LEVEL: "warn",
    ...extraEnv,
  };
  const child = spawn(binary(), ["serve", "--listen", `127.0.0.1:${port}`, "--data-dir", deployment.dir, ...args], { env, stdio: ["ignore", "ignore", "pipe"] });
  children.add(child);
  let stderr = "";
  child.stderr.on("data", (d) => {
    stderr = (stderr + d).slice(-4000);
  });
  const url = `http://127.0.0.1:${port}`;
  const deadline = Date.now() + 20000;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`tickgate serve exited ${child.exitCode}: ${stderr}`);
    try {
      if ((await fetch(`${url}/readyz`)).status === 200) break;
    } catch {
      // not listening yet
    }
    if (Date.now() > deadline) throw new Error(`gateway not ready: ${stderr}`);
    await new Promise((r) => setTimeout(r, 100));
  }
  return {
    url,
    port,
    pid: child.pid,
    /** SIGTERM, then wait for the process to end. */
    async stop() {
      if (child.exitCode !== null) return;
      const ended = new Promise((r) => child.once("exit", r));
      child.kill("SIGTERM");
      await Promise.race([ended, new Promise((r) => setTimeout(r, 10000))]);
      if (child.exitCode === null) child.kill("SIGKILL");
      children.delete(child);
    },
  };
}

/** The Chromium flags the project uses (a system browser; nothing is downloaded).
 * playwright-core adds a fresh --user-data-dir of its own to every launch. */
export function chromiumArgs() {
  return [
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
  ];
}
