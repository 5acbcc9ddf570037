// test_scaleout.mjs - three daemons (each its own state dir, TCP FastCGI on
// 127.0.0.1) behind one nginx generated from the real template with a
// least_conn upstream (max_fails, fail_timeout).  Under steady load one
// daemon is SIGKILLed: only requests it held may fail, every request after
// that succeeds on the other two, and a restarted daemon gets traffic again.
// Per-daemon metrics: the map + server blocks of
// nginx/upstream-scaleout.conf.example (with these daemons' addresses) serve
// /metrics/HOST:PORT from that daemon only; each exposition names its daemon
// in mlxm_daemon_info (address and pid) and passes `promtool check metrics`.
// Where prometheus is installed, the scrape config of docs/operations.md
// (pointed at these daemons) runs for real: one target per daemon, up, with
// instance equal to mlxm_daemon_info's daemon label.
import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { check, finish, freePort, request, binPath, isAlive, waitFor, REPO } from './lib.mjs';

const MODEL = 'random-demo-NOT-A-REAL-MODEL';
const N = 3;
const runDir = fs.mkdtempSync(path.join(os.tmpdir(), 'mlxm-scale-'));
const nginxBin = fs.existsSync('/usr/sbin/nginx') ? '/usr/sbin/nginx' : 'nginx';
const daemons = [];
let nginxStarted = false;
let prom = null;

function startDaemon(i) {
  const d = daemons[i];
  const log = fs.openSync(d.log, 'a');
  d.proc = spawn(binPath(), ['serve', '--listen', `127.0.0.1:${d.port}`, '--state-dir', d.state], { stdio: ['ignore', log, log] });
  fs.closeSync(log);
  return d.proc.pid;
}

// The FastCGI port accepts connections: the daemon is up.
async function daemonUp(port) {
  const net = await import('node:net');
  return new Promise((resolve) => {
    const s = net.connect(port, '127.0.0.1', () => { s.destroy(); resolve(true); });
    s.on('error', () => resolve(false));
  });
}

function promtool() {
  for (const p of ['/usr/bin/promtool', '/usr/local/bin/promtool']) if (fs.existsSync(p)) return p;
  return null;
}

// The per-daemon metrics part of the example config, pointed at our daemons
// and listening on 127.0.0.1:metricsPort.
function metricsBlocks(metricsPort) {
  const ex = fs.readFileSync(path.join(REPO, 'nginx/upstream-scaleout.conf.example'), 'utf8');
  const at = ex.indexOf('map $uri $mlxm_metrics_daemon');
  if (at < 0) throw new Error('upstream-scaleout.conf.example has no per-daemon metrics map');
  const entries = daemons.map((d) => `/metrics/127.0.0.1:${d.port} 127.0.0.1:${d.port};`).join('\n    ');
  let block = ex.slice(at).replace(/^\s*\/metrics\/\S+ \S+;\n/gm, '');
  block = block.replace('default "";', `default "";\n    ${entries}`);
  return block.replace(/listen \S+;/, `listen 127.0.0.1:${metricsPort};`);
}

// The per-daemon scrape config from docs/operations.md, pointed at our
// daemons and the nginx metrics listener.
function scrapeConfig(metricsPort) {
  const doc = fs.readFileSync(path.join(REPO, 'docs/operations.md'), 'utf8');
  const m = /### Metrics of each daemon[\s\S]*?```yaml\n([\s\S]*?)```/.exec(doc);
  if (!m) throw new Error('docs/operations.md has no per-daemon scrape config');
  const targets = daemons.map((d) => `"127.0.0.1:${d.port}"`).join(', ');
  return 'global: { scrape_interval: 1s, scrape_timeout: 1s }\n' +
    m[1].replace(/targets: \[[^\]]*\]/, `targets: [${targets}]`)
      .replace(/replacement: 10\.0\.0\.10:9145/, `replacement: 127.0.0.1:${metricsPort}`);
}

// mlxm_daemon_info's labels from an exposition, or null.
function daemonInfo(text) {
  const m = /^mlxm_daemon_info\{daemon="([^"]*)",hostname="([^"]*)",listen="([^"]*)",pid="(\d+)"\} 1$/m.exec(text);
  return m ? { daemon: m[1], hostname: m[2], listen: m[3], pid: Number(m[4]) } : null;
}

function servedBy(i) {
  return fs.readFileSync(daemons[i].log, 'utf8').split('\n').filter((l) => l.includes('"msg":"request"')).length;
}

try {
  // The demo model once, shared by every state dir.
  const model = path.join(runDir, 'model');
  const mk = spawnSync(binPath(), ['mkmodel', '--arch', 'qwen3', '--preset', 'tiny', '--dtype', 'f32', '--out', model, '--force'], { encoding: 'utf8' });
  check('demo model made', mk.status === 0, mk.stderr);
  for (let i = 0; i < N; i++) {
    const state = path.join(runDir, `state${i}`);
    fs.mkdirSync(path.join(state, 'models'), { recursive: true });
    fs.symlinkSync(model, path.join(state, 'models', MODEL));
    daemons.push({ port: await freePort(), state, log: path.join(runDir, `daemon${i}.log`) });
    startDaemon(i);
  }
  for (let i = 0; i < N; i++) check(`daemon ${i} listens on TCP`, await waitFor(() => daemonUp(daemons[i].port), 15000));

  // nginx from the real template, with the scale-out upstream.
  const port = await freePort();
  const metricsPort = await freePort();
  fs.mkdirSync(path.join(runDir, 'nginx-tmp'), { recursive: true });
  const upstream = ['least_conn;', ...daemons.map((d) => `server 127.0.0.1:${d.port} max_fails=1 fail_timeout=2s;`)].join('\n        ');
  const conf = fs.readFileSync(path.join(REPO, 'nginx/mlx-manager.conf.in'), 'utf8')
    .replace('server @UPSTREAM@;', upstream)
    .replaceAll('@RUN_DIR@', runDir).replaceAll('@STATIC_DIR@', path.join(REPO, 'static'))
    .replaceAll('@LISTEN@', `127.0.0.1:${port}`).replaceAll('@USER_LINE@', process.getuid() === 0 ? 'user root root;' : '')
    .replaceAll('@MAX_BODY@', '64m').replaceAll('@CLIENT_TIMEOUT@', '30s').replaceAll('@TLS_INCLUDE@', '');
  // The per-daemon metrics blocks go into the http block (before its closing brace).
  const httpEnd = conf.lastIndexOf('}');
  const fullConf = conf.slice(0, httpEnd) + metricsBlocks(metricsPort) + '\n' + conf.slice(httpEnd);
  fs.writeFileSync(path.join(runDir, 'nginx.conf'), fullConf);
  const ng = spawnSync(nginxBin, ['-e', path.join(runDir, 'nginx-error.log'), '-p', runDir, '-c', path.join(runDir, 'nginx.conf')], { encoding: 'utf8' });
  nginxStarted = ng.status === 0;
  check('nginx starts with three upstream daemons', nginxStarted, ng.stderr);
  const U = `http://127.0.0.1:${port}`;
  check('health through the balancer', (await request(U, 'GET', '/api/health')).status === 200);

  // Per-daemon metrics: each daemon's own exposition, told apart by mlxm_daemon_info.
  const M = `http://127.0.0.1:${metricsPort}`;
  const tool = promtool();
  check('promtool is installed (tools/setup.sh installs prometheus)', tool !== null);
  const infos = [];
  for (let i = 0; i < N; i++) {
    const d = daemons[i];
    const r = await request(M, 'GET', `/metrics/127.0.0.1:${d.port}`);
    const info = daemonInfo(r.text);
    infos.push(info);
    check(`daemon ${i}: /metrics/127.0.0.1:${d.port} answers 200 with mlxm_daemon_info`, r.status === 200 && info !== null, r.text.slice(0, 300));
    check(`daemon ${i}: its exposition names it (address and pid)`,
      info && info.daemon === `127.0.0.1:${d.port}` && info.listen === `127.0.0.1:${d.port}` && info.pid === d.proc.pid, [info, d.port, d.proc.pid]);
    if (tool) {
      const pc = spawnSync(tool, ['check', 'metrics'], { input: r.text, encoding: 'utf8', timeout: 30000 });
      check(`daemon ${i}: promtool check metrics accepts its exposition`, pc.status === 0, pc.stdout + pc.stderr);
    }
  }
  check('the three expositions name three different daemons',
    new Set(infos.map((x) => x && x.daemon)).size === N && new Set(infos.map((x) => x && x.pid)).size === N, infos);
  const unlisted = await request(M, 'GET', '/metrics/127.0.0.1:1');
  check('an address not in the map is 404 (no open FastCGI proxy)', unlisted.status === 404, unlisted.status);
  const viaBalancer = daemonInfo((await request(U, 'GET', '/metrics')).text);
  check('/metrics through the balancer comes from one of the daemons',
    viaBalancer !== null && infos.some((x) => x && x.daemon === viaBalancer.daemon), viaBalancer);

  // The documented scrape config, run by a real Prometheus where there is one.
  const promBin = ['/usr/bin/prometheus', '/usr/local/bin/prometheus'].find((p) => fs.existsSync(p));
  if (promBin) {
    const promPort = await freePort();
    const promYml = path.join(runDir, 'prometheus.yml');
    fs.writeFileSync(promYml, scrapeConfig(metricsPort));
    const promLog = fs.openSync(path.join(runDir, 'prometheus.log'), 'a');
    prom = spawn(promBin, [`--config.file=${promYml}`, `--storage.tsdb.path=${path.join(runDir, 'prom-data')}`,
      `--web.listen-address=127.0.0.1:${promPort}`], { stdio: ['ignore', promLog, promLog] });
    fs.closeSync(promLog);
    const P = `http://127.0.0.1:${promPort}`;
    let series = [];
    const scraped = await waitFor(async () => {
      try {
        const q = await request(P, 'GET', '/api/v1/query?query=' + encodeURIComponent('mlxm_daemon_info * on(instance) group_left up'));
        series = q.json?.data?.result || [];
        return series.length === N;
      } catch { return false; }
    }, 30000, 500);
    check('prometheus with the documented scrape config scrapes every daemon', scraped,
      [series, fs.readFileSync(path.join(runDir, 'prometheus.log'), 'utf8').split('\n').filter((l) => /level=(warn|error)/.test(l)).slice(0, 5)]);
    check('each target\'s instance is the daemon that answered it (up = 1)',
      series.length === N && series.every((x) => x.metric.instance === x.metric.daemon && x.value[1] === '1') &&
      daemons.every((d) => series.some((x) => x.metric.instance === `127.0.0.1:${d.port}`)), series.map((x) => x.metric));
    prom.kill('SIGTERM');
    await waitFor(() => !isAlive(prom.pid), 10000);
  } else {
    console.log('prometheus not installed: the scrape config is not run');
  }

  // Steady load: 6 clients alternating cheap and generating requests.
  const results = []; // {t, status}
  let stop = false;
  let killedAt = Infinity;
  async function client(c) {
    let k = 0;
    while (!stop) {
      const gen = (k++ + c) % 2 === 0;
      const t0 = Date.now();
      let status = 0;
      try {
        const r = gen
          ? await request(U, 'POST', '/v1/completions', { model: MODEL, prompt: 'scale', max_tokens: 4, ignore_eos: true })
          : await request(U, 'GET', '/v1/models');
        status = r.status;
      } catch { status = -1; }
      results.push({ t0, t: Date.now(), status });
    }
  }
  const clients = Array.from({ length: 6 }, (_, c) => client(c));
  await new Promise((r) => setTimeout(r, 2000));
  const before = daemons.map((_, i) => servedBy(i));
  check('least_conn spreads the load over all three daemons', before.every((n) => n > 5), before);
  killedAt = Date.now();
  daemons[1].proc.kill('SIGKILL');
  check('daemon 1 killed', await waitFor(() => !isAlive(daemons[1].proc.pid), 5000));
  await new Promise((r) => setTimeout(r, 3000));
  // Restart it: after fail_timeout nginx tries it again.
  const served1 = servedBy(1);
  startDaemon(1);
  await waitFor(() => daemonUp(daemons[1].port), 15000);
  await new Promise((r) => setTimeout(r, 3500));
  stop = true;
  await Promise.all(clients);

  const ok = results.filter((r) => r.status === 200).length;
  const failed = results.filter((r) => r.status !== 200);
  // Only requests already in flight on daemon 1 when it died may fail.
  const lateFailures = failed.filter((r) => r.t0 > killedAt + 100);
  console.log(`scale-out: ${results.length} requests, ${ok} ok, ${failed.length} failed (${lateFailures.length} started after the kill); served before kill ${before.join('/')}`);
  check('requests kept succeeding: none started after the kill failed', lateFailures.length === 0, lateFailures.slice(0, 5));
  check('at most the in-flight requests of the killed daemon failed', failed.length <= 6, failed.length);
  check('the load ran (>100 requests)', results.length > 100, results.length);
  check('failures were JSON 503 from the template, not HTML', failed.every((r) => r.status === 503 || r.status === -1), failed.map((r) => r.status));
  check('the restarted daemon gets traffic again', servedBy(1) > served1, [served1, servedBy(1)]);
  const again = daemonInfo((await request(M, 'GET', `/metrics/127.0.0.1:${daemons[1].port}`)).text);
  check('the restarted daemon\'s metrics carry its new pid', again !== null && again.pid === daemons[1].proc.pid && again.pid !== infos[1]?.pid, [again, daemons[1].proc.pid]);
} catch (e) {
  check('no exception', false, e.stack);
} finally {
  if (prom && isAlive(prom.pid)) prom.kill('SIGKILL');
  if (nginxStarted) spawnSync(nginxBin, ['-s', 'quit', '-p', runDir, '-c', path.join(runDir, 'nginx.conf')]);
  for (const d of daemons) {
    if (d.proc && isAlive(d.proc.pid)) {
      d.proc.kill('SIGTERM');
      await waitFor(() => !isAlive(d.proc.pid), 10000);
      if (isAlive(d.proc.pid)) d.proc.kill('SIGKILL');
    }
  }
  await waitFor(() => !fs.existsSync(path.join(runDir, 'nginx.pid')), 5000);
  fs.rmSync(runDir, { recursive: true, force: true });
  finish();
}
