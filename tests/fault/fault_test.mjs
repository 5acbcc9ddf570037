// fault_test.mjs - `make fault-test`: faults each end in a clear error and a
// consistent database (PRAGMA integrity_check), with the daemon still
// serving:
//   1. a corrupt model file (truncated weights, garbage header)
//   2. the model directory removed while the model is loaded
//   3. clients that disconnect at random points (mid-body, mid-stream)
//   4. disk full during a download: a 3 MiB tmpfs as models_dir (refused
//      up front), and one that fills up mid-write (ENOSPC); mounting needs
//      CAP_SYS_ADMIN, else reported as skipped
//   5. SIGKILL during a download, then the restarted daemon resumes it
//   6. SIGKILL during generation
// Prints "N passed, M failed".
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { check, finish, startServer, request, binPath, isAlive, waitFor, procStats, REPO } from '../integration/lib.mjs';
import { startHubServer } from '../hub_server.mjs';

for (const k of ['HF_HOME', 'HF_ENDPOINT', 'HF_TOKEN']) delete process.env[k];
const work = fs.mkdtempSync(path.join(os.tmpdir(), 'mlxm-fault-'));
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const user = [{ role: 'user', content: 'hi' }];

function mkmodel(dir, extra = []) {
  const r = spawnSync(binPath(), ['mkmodel', '--arch', 'qwen3', '--preset', 'tiny', '--dtype', 'f32', '--out', dir, '--force', ...extra], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(r.stderr);
  return dir;
}
function integrity(stateDir) {
  const r = spawnSync('sqlite3', [path.join(stateDir, 'mlx-manager.db'), 'PRAGMA integrity_check;'], { encoding: 'utf8' });
  return r.stdout.trim() || r.stderr.trim();
}
const clearError = (r) => r.status >= 400 && r.status < 600 && r.json && r.json.error && typeof r.json.error.message === 'string' && r.json.error.message.length > 10;
async function healthy(U) {
  return (await request(U, 'GET', '/api/health')).status === 200;
}

const servers = [];
let hub = null;
let mounted = null;
try {
  // ---- 1, 2, 3 on one daemon ----
  const srv = await startServer('workers: 16\n');
  servers.push(srv);
  const U = srv.url;

  const trunc = mkmodel(path.join(work, 'truncated'));
  const st = path.join(trunc, 'model.safetensors');
  fs.truncateSync(st, Math.floor(fs.statSync(st).size / 2));
  let r = await request(U, 'POST', '/v1/chat/completions', { model: trunc, messages: user, max_tokens: 2 });
  check('truncated weights: a clear JSON error', clearError(r), r.text.slice(0, 300));
  console.log(`  truncated weights -> ${r.status} ${r.json && r.json.error && r.json.error.message}`);
  const garbage = mkmodel(path.join(work, 'garbage'));
  fs.writeFileSync(path.join(garbage, 'model.safetensors'), Buffer.from('\xff\xff\xff\xff\xff\xff\xff\x7f{not json at all', 'latin1'));
  r = await request(U, 'POST', '/v1/chat/completions', { model: garbage, messages: user, max_tokens: 2 });
  check('garbage safetensors header: a clear JSON error', clearError(r), r.text.slice(0, 300));
  console.log(`  garbage header -> ${r.status} ${r.json && r.json.error && r.json.error.message}`);
  fs.writeFileSync(path.join(garbage, 'config.json'), '{"model_type": 42');
  r = await request(U, 'POST', '/v1/chat/completions', { model: garbage, messages: user, max_tokens: 2 });
  check('broken config.json: a clear JSON error', clearError(r), r.text.slice(0, 300));
  check('the daemon still serves after corrupt models', await healthy(U));

  const doomed = mkmodel(path.join(work, 'doomed'));
  r = await request(U, 'POST', '/v1/chat/completions', { model: doomed, messages: user, max_tokens: 2 });
  check('model loads before its directory goes', r.status === 200, r.text.slice(0, 200));
  fs.rmSync(doomed, { recursive: true, force: true });
  r = await request(U, 'POST', '/v1/chat/completions', { model: doomed, messages: user, max_tokens: 2 });
  check('directory removed while loaded: served from memory or a clear error', r.status === 200 || clearError(r), r.text.slice(0, 300));
  console.log(`  directory removed while loaded -> ${r.status}`);
  r = await request(U, 'POST', '/admin/models/unload', { model: doomed, force: true });
  r = await request(U, 'POST', '/v1/chat/completions', { model: doomed, messages: user, max_tokens: 2 });
  check('after unloading, the vanished model is a clear 404', r.status === 404 && clearError(r), r.text.slice(0, 300));

  // Random disconnects: streams aborted after 0..60 ms, bodies cut short.
  const MODEL = 'random-demo-NOT-A-REAL-MODEL';
  await request(U, 'POST', '/v1/chat/completions', { model: MODEL, messages: user, max_tokens: 1 });
  const base = procStats(srv.pid);
  const aborted = [];
  for (let i = 0; i < 60; i++) {
    const ac = new AbortController();
    const p = fetch(`${U}/v1/chat/completions`, { method: 'POST', signal: ac.signal, headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ model: MODEL, messages: user, max_tokens: 400, ignore_eos: true, stream: i % 2 === 0 }) })
      .then((res) => res.text()).catch(() => null);
    setTimeout(() => ac.abort(), Math.floor(Math.random() * 60));
    aborted.push(p);
  }
  const port = Number(new URL(U).port);
  for (let i = 0; i < 20; i++) {
    aborted.push(new Promise((resolve) => {
      const s = net.connect(port, '127.0.0.1', () => {
        const body = JSON.stringify({ model: MODEL, messages: user, max_tokens: 4 });
        s.write(`POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: ${body.length}\r\n\r\n`);
        s.write(body.slice(0, Math.floor(Math.random() * body.length)));
        setTimeout(() => { s.destroy(); resolve(); }, Math.floor(Math.random() * 50));
      });
      s.on('error', () => resolve());
    }));
  }
  await Promise.all(aborted);
  let status;
  await waitFor(async () => {
    status = (await request(U, 'GET', '/admin/models/status')).json;
    const list = Array.isArray(status) ? status : (status && (status.data || status.models)) || [];
    return list.every((m) => !m.leases && !m.queue_depth);
  }, 15000, 200);
  const list = Array.isArray(status) ? status : (status && (status.data || status.models)) || [];
  check('after random disconnects no request slot is leaked', list.length > 0 && list.every((m) => m.leases === 0 && m.queue_depth === 0), status);
  await sleep(300);
  const after = procStats(srv.pid);
  check('after random disconnects the fds are back', after.fds <= base.fds + 2, [base.fds, after.fds]);
  r = await request(U, 'POST', '/v1/chat/completions', { model: MODEL, messages: user, max_tokens: 3 });
  check('and a new request is served', r.status === 200, r.text.slice(0, 200));
  const log = fs.readFileSync(path.join(srv.runDir, 'daemon.log'), 'utf8');
  check('disconnects are logged as client_gone/499, not errors', /"status":499|"client_gone":true/.test(log) && !/runtime error|Sanitizer/.test(log));
  srv.stop();
  check('database consistent after 1-3', integrity(srv.stateDir) === 'ok', integrity(srv.stateDir));

  // ---- 4, 5: downloads ----
  const big = mkmodel(path.join(work, 'big'), ['--hidden', '256', '--layers', '4', '--ffn', '768']);
  hub = await startHubServer([{ id: 'fault-org/big', dir: big }, { id: 'fault-org/big2', dir: big }]);
  const small = path.join(work, 'smallfs');
  fs.mkdirSync(small);
  const m = spawnSync('mount', ['-t', 'tmpfs', '-o', 'size=3m', 'tmpfs', small], { encoding: 'utf8' });
  if (m.status === 0) {
    mounted = small;
    const d = await startServer(`models_dir: ${small}\nhf_endpoint: ${hub.url}\n`);
    servers.push(d);
    r = await request(d.url, 'POST', '/api/models/download', { model_id: 'fault-org/big' });
    const id = r.json && r.json.task_id;
    let t;
    await waitFor(async () => {
      t = (await request(d.url, 'GET', '/api/models/downloads')).json.data.find((x) => x.id === id);
      return t && ['failed', 'completed'].includes(t.status);
    }, 60000, 200);
    check('disk full during a download: the task fails with the reason', t && t.status === 'failed' && /space|ENOSPC|full/i.test(t.error || ''), t);
    console.log(`  disk full -> ${t && t.status}: ${t && t.error}`);
    // The disk fills up while a download is writing (it passed the free
    // space check): the write fails with ENOSPC.
    spawnSync('umount', [small]);
    spawnSync('mount', ['-t', 'tmpfs', '-o', 'size=16m', 'tmpfs', small]);
    hub.control({ throttle_bps: 1_000_000 });
    r = await request(d.url, 'POST', '/api/models/download', { model_id: 'fault-org/big' });
    const id2 = r.json && r.json.task_id;
    await waitFor(async () => {
      t = (await request(d.url, 'GET', '/api/models/downloads')).json.data.find((x) => x.id === id2);
      return t && t.bytes_done > 1_000_000;
    }, 30000, 100);
    spawnSync('dd', ['if=/dev/zero', `of=${path.join(small, 'filler')}`, 'bs=1M', 'count=64'], { encoding: 'utf8' });
    await waitFor(async () => {
      t = (await request(d.url, 'GET', '/api/models/downloads')).json.data.find((x) => x.id === id2);
      return t && ['failed', 'completed'].includes(t.status);
    }, 60000, 200);
    hub.control({ throttle_bps: 0 });
    check('disk filling up mid-download: the task fails with the reason', t && t.status === 'failed' && /space|ENOSPC|full/i.test(t.error || ''), t);
    console.log(`  disk full mid-write -> ${t && t.status}: ${t && t.error}`);
    check('the daemon still serves after disk full', await healthy(d.url));
    d.stop();
    check('database consistent after disk full', integrity(d.stateDir) === 'ok', integrity(d.stateDir));
  } else {
    console.log(`SKIP disk full during download: cannot mount a tmpfs here (${m.stderr.trim()}); needs CAP_SYS_ADMIN`);
  }

  const models = path.join(work, 'models');
  const dl = await startServer(`models_dir: ${models}\nhf_endpoint: ${hub.url}\n`);
  servers.push(dl);
  hub.control({ throttle_bps: 2_000_000 });
  r = await request(dl.url, 'POST', '/api/models/download', { model_id: 'fault-org/big2' });
  const tid = r.json && r.json.task_id;
  await waitFor(async () => {
    const t = (await request(dl.url, 'GET', '/api/models/downloads')).json.data.find((x) => x.id === tid);
    return t && t.bytes_done > 500000;
  }, 30000, 100);
  process.kill(dl.pid, 'SIGKILL');
  check('SIGKILL during a download', await waitFor(() => !isAlive(dl.pid), 5000));
  dl.stop();
  check('database consistent after SIGKILL during download', integrity(dl.stateDir) === 'ok', integrity(dl.stateDir));
  hub.control({ throttle_bps: 0 });
  const dl2 = await startServer(`models_dir: ${models}\nhf_endpoint: ${hub.url}\n`, { stateDir: dl.stateDir });
  servers.push(dl2);
  let t2;
  await waitFor(async () => {
    t2 = (await request(dl2.url, 'GET', '/api/models/downloads')).json.data.find((x) => x.id === tid);
    return t2 && ['completed', 'failed'].includes(t2.status);
  }, 60000, 200);
  check('the restarted daemon resumes and completes the download', t2 && t2.status === 'completed', t2);
  r = await request(dl2.url, 'POST', '/v1/chat/completions', { model: 'fault-org/big2', messages: user, max_tokens: 2 });
  check('and the downloaded model serves', r.status === 200, r.text.slice(0, 200));

  // ---- 6: SIGKILL during generation ----
  const gens = [];
  for (let i = 0; i < 4; i++) {
    gens.push(fetch(`${dl2.url}/v1/chat/completions`, { method: 'POST', headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ model: 'fault-org/big2', messages: user, max_tokens: 5000, ignore_eos: true, stream: true }) })
      .then((res) => res.text()).catch(() => null));
  }
  await sleep(500);
  process.kill(dl2.pid, 'SIGKILL');
  await Promise.all(gens);
  check('SIGKILL during generation', await waitFor(() => !isAlive(dl2.pid), 5000));
  dl2.stop();
  check('database consistent after SIGKILL during generation', integrity(dl2.stateDir) === 'ok', integrity(dl2.stateDir));
} catch (e) {
  check('no exception', false, e.stack);
} finally {
  for (const s of servers) s.cleanup();
  if (hub) await hub.close();
  if (mounted) spawnSync('umount', [mounted]);
  fs.rmSync(work, { recursive: true, force: true });
  finish();
}
