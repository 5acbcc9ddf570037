// lib.mjs - shared pieces of the integration tests: a tiny check harness and
// starting/stopping nginx + the daemon from the generated configuration on a
// free loopback port, in a temporary run directory.
import { execFileSync, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';

export const REPO = path.resolve(path.dirname(new URL(import.meta.url).pathname), '../..');
export const BUILD = process.env.BUILD || 'build';

let passed = 0;
let failed = 0;

export function check(name, cond, detail) {
  if (cond) {
    passed++;
    console.log(`ok   ${name}`);
  } else {
    failed++;
    console.log(`FAIL ${name}${detail !== undefined ? ': ' + (typeof detail === 'string' ? detail : JSON.stringify(detail)) : ''}`);
  }
  return !!cond;
}

export function finish() {
  console.log(`${passed} passed, ${failed} failed`);
  process.exitCode = failed ? 1 : 0;
}

export async function freePort() {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
    srv.on('error', reject);
  });
}

// Servers started here and not yet stopped: stopped when the test exits in
// any way, a signal (the runner's timeout) or an uncaught exception included,
// so no nginx or daemon outlives its test.
const liveServers = new Set();
process.on('exit', () => {
  for (const srv of liveServers) srv.stop();
});
for (const sig of ['SIGTERM', 'SIGINT', 'SIGHUP']) {
  process.on(sig, () => process.exit(128 + os.constants.signals[sig]));
}

// Starts nginx + daemon with tools/run.sh (DETACH=1). `configYaml` is written
// to the run directory (with @RUN_DIR@ replaced) and passed as the daemon's
// config.  opts.stateDir reuses an earlier server's database; opts.env adds
// environment variables for tools/run.sh (TLS=1, ...).
export async function startServer(configYaml = '', opts = {}) {
  const port = await freePort();
  const runDir = fs.mkdtempSync(path.join(os.tmpdir(), 'mlxm-it-'));
  const stateDir = opts.stateDir || path.join(runDir, 'state');
  const configPath = path.join(runDir, 'config.yaml');
  fs.writeFileSync(configPath, configYaml.replaceAll('@RUN_DIR@', runDir));
  const env = {
    ...process.env, BUILD, RUN_DIR: runDir, PORT: String(port), HOST: '127.0.0.1',
    DETACH: '1', MLXM_CONFIG: configPath, MLXM_STATE_DIR: stateDir, ...(opts.env || {}),
  };
  const r = spawnSync(path.join(REPO, 'tools/run.sh'), [], { env, encoding: 'utf8', timeout: 60000 });
  if (r.status !== 0) {
    throw new Error(`tools/run.sh failed (${r.status}): ${r.stdout}\n${r.stderr}`);
  }
  const pid = Number(fs.readFileSync(path.join(runDir, 'daemon.pid'), 'utf8'));
  const srv = {
    port, runDir, stateDir, pid, env,
    url: `http://127.0.0.1:${port}`,
    stop() {
      liveServers.delete(srv);
      spawnSync(path.join(REPO, 'tools/stop.sh'), [], { env, encoding: 'utf8', timeout: 60000 });
    },
    cleanup() {
      this.stop();
      fs.rmSync(runDir, { recursive: true, force: true });
    },
  };
  liveServers.add(srv);
  return srv;
}

export function procStats(pid) {
  const fds = fs.readdirSync(`/proc/${pid}/fd`).length;
  const status = fs.readFileSync(`/proc/${pid}/status`, 'utf8');
  const rssKb = Number(/VmRSS:\s+(\d+)/.exec(status)[1]);
  return { fds, rssKb };
}

export function isAlive(pid) {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

export async function waitFor(pred, ms = 10000, step = 50) {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    if (await pred()) return true;
    await new Promise((r) => setTimeout(r, step));
  }
  return false;
}

// Sends a raw request body (string or Buffer) and returns {status, headers, json, text}.
export async function request(base, method, p, body, headers = {}) {
  const init = { method, headers: { ...headers } };
  if (body !== undefined) {
    init.body = typeof body === 'string' || Buffer.isBuffer(body) ? body : JSON.stringify(body);
    if (!init.headers['content-type']) init.headers['content-type'] = 'application/json';
  }
  const res = await fetch(base + p, init);
  const text = await res.text();
  let json = null;
  try { json = text ? JSON.parse(text) : null; } catch { /* not JSON */ }
  return { status: res.status, headers: res.headers, json, text };
}

export function binPath() {
  return path.join(REPO, BUILD, 'mlx-manager');
}

export function runBin(args, input) {
  return spawnSync(binPath(), args, { input, encoding: 'utf8', timeout: 60000 });
}

export { execFileSync };

// Sanitizer reports (ASan, UBSan, LSan) the daemon wrote to its stderr log.
export function sanitizerReports(runDir) {
  const file = path.join(runDir, 'daemon.log');
  if (!fs.existsSync(file)) return [];
  return fs.readFileSync(file, 'utf8').split('\n')
    .filter((l) => /ERROR: (Address|Leak)Sanitizer|runtime error:|SUMMARY: \w+Sanitizer/.test(l));
}
