// test_hub.mjs - the model hub through nginx + daemon against a local
// HF-compatible server (tests/hub_server.mjs): search (filters, sort, size
// estimate, fits_memory, is_downloaded), downloads into the HF cache layout
// with hashes checked, SSE progress during a throttled download, resume
// after SIGKILL of the daemon and after a dropped connection (Range seen by
// the server), corrupt blobs rejected, 401/404 from the hub, pause / resume /
// cancel, unsafe ids and repo paths refused, local listing, delete (409 while
// loaded), and a downloaded model answering /v1/completions.
import { spawn } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import {
  binPath, check, finish, isAlive, startServer, request, runBin, waitFor, sanitizerReports, REPO,
} from './lib.mjs';
import { startHubServer } from '../hub_server.mjs';

const SHARED = path.resolve(process.env.MLXM_SHARED || path.join(REPO, '../shared'));
const FIX = path.join(SHARED, 'fixtures/models');
if (!fs.existsSync(path.join(FIX, 'aidreams-260k/config.json'))) {
  console.error(`error: test fixtures not found at ${SHARED}/fixtures (set MLXM_SHARED to the shared/ folder beside the repository)`);
  console.log('0 passed, 1 failed');
  process.exit(1);
}
for (const k of ['HF_HOME', 'HF_ENDPOINT', 'HF_TOKEN']) delete process.env[k];

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'mlxm-hub-'));
const models = path.join(tmp, 'hub');
fs.mkdirSync(models);
function mkmodel(name) {
  const out = path.join(tmp, name);
  const r = runBin(['mkmodel', '--arch', 'llama', '--hidden', '256', '--layers', '4', '--heads', '4',
    '--ffn', '512', '--vocab', '2048', '--dtype', 'f16', '--seed', String(name.length), '--out', out]);
  if (r.status !== 0) throw new Error(`mkmodel failed: ${r.stderr}`);
  return out;
}
// a 6-bit MLX model: its codes count at the 8 bits the engine widens them to
const six = path.join(tmp, 'six-bit');
{
  const r = runBin(['mkmodel', '--arch', 'llama', '--preset', 'tiny', '--dtype', 'mlx-6bit', '--out', six]);
  if (r.status !== 0) throw new Error(`mkmodel failed: ${r.stderr}`);
}
// bytes per dtype from a safetensors header, U32 (the codes) scaled from 6 to 8 bits
function widenedBytes(file) {
  const buf = fs.readFileSync(file);
  const n = Number(buf.readBigUInt64LE(0));
  const header = JSON.parse(buf.subarray(8, 8 + n).toString('utf8'));
  const size = { F32: 4, F16: 2, BF16: 2, U32: 4 };
  let total = 0;
  for (const [name, t] of Object.entries(header)) {
    if (name === '__metadata__') continue;
    const bytes = t.shape.reduce((a, b) => a * b, 1) * size[t.dtype];
    total += t.dtype === 'U32' ? bytes / 6 * 8 : bytes;
  }
  return total;
}
const bigA = mkmodel('big-a');
const bigB = mkmodel('big-bb');
const bigC = mkmodel('big-ccc');

const hub = await startHubServer([
  { id: 'test-org/aidreams-260k', dir: path.join(FIX, 'aidreams-260k'), downloads: 500, likes: 3, lastModified: '2025-03-01T00:00:00.000Z' },
  { id: 'test-org/aidreams-260k-mlx-4bit', dir: path.join(FIX, 'aidreams-260k-mlx-4bit'), downloads: 900, likes: 1, lastModified: '2025-01-01T00:00:00.000Z' },
  { id: 'test-org/aidreams-260k-sharded', dir: path.join(FIX, 'aidreams-260k-sharded'), downloads: 10, likes: 7, lastModified: '2025-02-01T00:00:00.000Z' },
  { id: 'test-org/random-a', dir: bigA, downloads: 1, likes: 0 },
  { id: 'test-org/random-b', dir: bigB, downloads: 2, likes: 0 },
  { id: 'test-org/random-c', dir: bigC, downloads: 3, likes: 0 },
  { id: 'other-org/aidreams-copy', dir: path.join(FIX, 'aidreams-260k-f16'), downloads: 99999, likes: 99 },
  { id: 'test-org/evil', files: { 'config.json': '{}', '../../escaped.txt': 'gotcha' } },
  { id: 'test-org/random-d', dir: bigA },
  { id: 'test-org/huge', files: { 'config.json': '{}', 'model.safetensors': 'x' }, listed_sizes: { 'model.safetensors': 2 ** 50 } },
  { id: 'test-org/six-bit', dir: six },
  { id: 'q-org/one', dir: path.join(FIX, 'aidreams-260k-bf16') },
  { id: 'q-org/two', dir: path.join(FIX, 'aidreams-260k-bf16') },
  { id: 'q-org/three', dir: path.join(FIX, 'aidreams-260k-bf16') },
]);

const yaml = `models_dir: ${models}\nhf_endpoint: ${hub.url}\nworkers: 6\n`;
let srv = await startServer(yaml);
const oldRuns = [];
let U = srv.url;

const sha256 = (file) => crypto.createHash('sha256').update(fs.readFileSync(file)).digest('hex');
const repoDir = (id) => path.join(models, `models--${id.replace('/', '--')}`);
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const isError = (r, status, code) => r.status === status && r.json && r.json.error &&
  typeof r.json.error.message === 'string' && (code === undefined || r.json.error.code === code);

// Runs the CLI without blocking the event loop (the hub server lives in
// this process); interruptMs sends SIGINT after that long.
function runCli(args, env, interruptMs) {
  return new Promise((resolve) => {
    const p = spawn(binPath(), args, { env });
    let stdout = '';
    let stderr = '';
    p.stdout.on('data', (d) => { stdout += d; });
    p.stderr.on('data', (d) => { stderr += d; });
    const timer = interruptMs ? setTimeout(() => p.kill('SIGINT'), interruptMs) : null;
    const hard = setTimeout(() => p.kill('SIGKILL'), 60000);
    p.on('close', (code) => {
      clearTimeout(timer);
      clearTimeout(hard);
      resolve({ code, stdout, stderr });
    });
  });
}
// A request whose path is sent exactly as written (fetch would resolve dots).
function rawRequest(base, method, p) {
  const u = new URL(base);
  return new Promise((resolve, reject) => {
    const req = http.request({ host: u.hostname, port: u.port, method, path: p }, (res) => {
      res.resume();
      res.on('end', () => resolve(res.statusCode));
    });
    req.on('error', reject);
    req.end();
  });
}
async function task(id) {
  return (await request(U, 'GET', '/api/models/downloads')).json.data.find((t) => t.id === id);
}
async function waitTask(id, statuses, ms = 30000) {
  let last;
  await waitFor(async () => {
    last = await task(id);
    return last && statuses.includes(last.status);
  }, ms, 100);
  return last;
}
async function startDownload(model_id) {
  const r = await request(U, 'POST', '/api/models/download', { model_id });
  if (r.status !== 202) throw new Error(`download ${model_id}: ${r.status} ${r.text}`);
  return r.json.task_id;
}
// Reads the SSE progress stream until it ends; returns [{t, ev}].
async function readProgress(id) {
  const res = await fetch(`${U}/api/models/download/${id}/progress`);
  const events = [];
  const dec = new TextDecoder();
  let buf = '';
  for await (const chunk of res.body) {
    buf += dec.decode(chunk, { stream: true });
    let i;
    while ((i = buf.indexOf('\n\n')) >= 0) {
      const block = buf.slice(0, i);
      buf = buf.slice(i + 2);
      const data = block.split('\n').find((l) => l.startsWith('data: '));
      if (data) events.push({ t: Date.now(), ev: JSON.parse(data.slice(6)) });
    }
  }
  return { status: res.status, type: res.headers.get('content-type'), events };
}
function checkCache(id, label) {
  const r = hub.repos.get(id);
  const dir = repoDir(id);
  const ref = fs.existsSync(path.join(dir, 'refs/main')) && fs.readFileSync(path.join(dir, 'refs/main'), 'utf8');
  check(`${label}: refs/main names the commit`, ref === r.sha, ref);
  let ok = true;
  let detail = '';
  for (const e of r.entries) {
    const link = path.join(dir, 'snapshots', r.sha, e.path);
    const blob = e.lfs ? e.lfs.oid : e.oid;
    let target = null;
    try { target = fs.readlinkSync(link); } catch { /* missing */ }
    const want = '../'.repeat(2 + e.path.split('/').length - 1) + 'blobs/' + blob;
    if (target !== want || !fs.existsSync(link) ||
        crypto.createHash('sha256').update(fs.readFileSync(link)).digest('hex') !==
        crypto.createHash('sha256').update(e.buf).digest('hex')) {
      ok = false;
      detail = `${e.path}: link ${target}, want ${want}`;
    }
  }
  check(`${label}: every file is a relative link to its blob with the right contents`, ok, detail);
  const partials = fs.readdirSync(path.join(dir, 'blobs')).filter((f) => f.endsWith('.incomplete'));
  check(`${label}: no partial blobs left`, partials.length === 0, partials);
}
const rangeRequests = (id, file) => hub.log().filter((l) => l.range && l.range !== 'bytes=0-' &&
  (l.url.includes(`/${id}/resolve/`) || l.url.includes(`/_lfs/${id}/`)) &&
  (!file || l.url.includes(file) || l.url.includes('/_lfs/')));

try {
  // ---- search --------------------------------------------------------------
  let r = await request(U, 'GET', '/api/models/search?author=test-org&sort=downloads&limit=3');
  check('search: 200', r.status === 200, r.text);
  const ids = r.json ? r.json.data.map((m) => m.model_id) : [];
  check('search: author filter, sort by downloads, limit',
    JSON.stringify(ids) === JSON.stringify(['test-org/aidreams-260k-mlx-4bit', 'test-org/aidreams-260k', 'test-org/aidreams-260k-sharded']), ids);
  r = await request(U, 'GET', '/api/models/search?query=aidreams&sort=likes&limit=10');
  check('search: query + sort by likes',
    r.status === 200 && r.json.data[0].model_id === 'other-org/aidreams-copy' &&
    r.json.data[1].model_id === 'test-org/aidreams-260k-sharded' &&
    r.json.data.every((m) => m.model_id.includes('aidreams')), r.json && r.json.data.map((m) => m.model_id));
  r = await request(U, 'GET', '/api/models/search?query=aidreams-260k&author=test-org&sort=lastModified');
  check('search: sort by lastModified', r.status === 200 && r.json.data[0].model_id === 'test-org/aidreams-260k', r.text);
  const aid = r.json.data.find((m) => m.model_id === 'test-org/aidreams-260k');
  const q4 = r.json.data.find((m) => m.model_id === 'test-org/aidreams-260k-mlx-4bit');
  // fp32 aidreams: the safetensors header counts; KV: 2 * 4 layers * 4 kv heads * 16 dims * 128 ctx * 4 bytes.
  const aidFile = fs.statSync(path.join(FIX, 'aidreams-260k/model.safetensors')).size;
  check('search: weights estimate from parameter counts (within the header size)',
    aid && aid.weights_bytes > aidFile - 20000 && aid.weights_bytes <= aidFile, aid);
  check('search: KV estimate for the default context', aid && aid.kv_bytes === 2 * 4 * 4 * 16 * 128 * 4 && aid.kv_context === 128, aid);
  check('search: estimated size = weights + KV', aid && aid.estimated_size_bytes === aid.weights_bytes + aid.kv_bytes, aid);
  check('search: quantization from config (4 bits, group 32)', q4 && q4.quantization && q4.quantization.bits === 4 && q4.quantization.group_size === 32, q4);
  check('search: float model has no quantization', aid && aid.quantization === null, aid);
  r = await request(U, 'GET', '/api/models/search?query=six-bit&author=test-org');
  const six6 = r.status === 200 && r.json.data.find((m) => m.model_id === 'test-org/six-bit');
  const sixWant = widenedBytes(path.join(six, 'model.safetensors'));
  check('search: 6-bit codes count at the 8 bits the engine loads them in',
    six6 && six6.quantization.bits === 6 && six6.weights_bytes === sixWant &&
    sixWant > fs.statSync(path.join(six, 'model.safetensors')).size, { six6, sixWant });
  check('search: fields', aid && aid.author === 'test-org' && aid.downloads === 500 && aid.likes === 3 &&
    Array.isArray(aid.tags) && aid.last_modified === '2025-03-01T00:00:00.000Z' && aid.is_downloaded === false &&
    aid.fits_in_memory === true, aid);
  r = await request(U, 'GET', '/api/models/search?author=test-org&max_size_gb=0.0005');
  check('search: max_size_gb drops bigger models',
    r.status === 200 && r.json.data.length > 0 && r.json.data.every((m) => m.estimated_size_bytes <= 0.0005 * 2 ** 30) &&
    !r.json.data.some((m) => m.model_id === 'test-org/random-a'), r.json && r.json.data.map((m) => [m.model_id, m.estimated_size_bytes]));
  r = await request(U, 'GET', '/api/models/search?author=test-org&fits_memory=true');
  check('search: fits_memory=true keeps only fitting models', r.status === 200 && r.json.data.length > 0 &&
    r.json.data.every((m) => m.fits_in_memory === true) && r.json.memory_budget_bytes > 0, r.text);
  const nBefore = hub.log().length;
  r = await request(U, 'GET', '/api/models/search?author=test-org&sort=downloads&limit=3');
  check('search: repeated query served from the cache', r.status === 200 && r.json.cached === true && hub.log().length === nBefore);
  for (const [q, param] of [['sort=size', 'sort'], ['limit=0', 'limit'], ['limit=x', 'limit'], ['max_size_gb=-1', 'max_size_gb'], ['fits_memory=yes', 'fits_memory']]) {
    r = await request(U, 'GET', `/api/models/search?${q}`);
    check(`search: ${q} -> 422 naming ${param}`, isError(r, 422) && r.json.error.param === param, r.text);
  }

  // ---- unsafe ids -----------------------------------------------------------
  for (const bad of ['../x', 'a/../../b', 'org/name/extra', '/abs/path', '%2e%2e/x', '.hidden/x', 'org/..', 'noslash', '', 'org/na me']) {
    r = await request(U, 'POST', '/api/models/download', { model_id: bad });
    check(`download: model_id ${JSON.stringify(bad)} refused with 422`, isError(r, 422, 'invalid_model_id'), r.text);
  }
  r = await request(U, 'POST', '/api/models/download', { model_id: 'test-org/random-a', revision: '../main' });
  check('download: unsafe revision refused', isError(r, 422), r.text);
  r = await request(U, 'DELETE', '/api/models/%252e%252e/x');
  check('delete: URL-encoded dots refused', isError(r, 422, 'invalid_model_id'), r.text);
  r = await rawRequest(U, 'DELETE', '/api/models/%2e%2e/%2e%2e');
  check('delete: raw %2e%2e segments are refused (nginx resolves them away from /api/models/)',
    r >= 400 && r < 500, r);
  check('nothing was created outside the cache', fs.readdirSync(tmp).sort().join() === 'big-a,big-bb,big-ccc,hub,six-bit' &&
    fs.readdirSync(models).length === 0, fs.readdirSync(models));

  // ---- 404 and 401 from the hub ------------------------------------------
  r = await request(U, 'POST', '/api/models/download', { model_id: 'test-org/nope' });
  check('download: unknown repo -> 404 naming the hub answer', isError(r, 404, 'hub_model_not_found') && /404/.test(r.json.error.message) && /not found/i.test(r.json.error.message), r.text);
  hub.control({ require_token: 'sekrit' });
  r = await request(U, 'GET', '/api/models/search?query=needs-token');
  check('search: hub 401 -> 502 hub_unauthorized with the hub message', isError(r, 502, 'hub_unauthorized') && /401/.test(r.json.error.message) && /hf_token/.test(r.json.error.message), r.text);
  r = await request(U, 'POST', '/api/models/download', { model_id: 'test-org/aidreams-260k' });
  check('download: hub 401 -> 502 hub_unauthorized', isError(r, 502, 'hub_unauthorized'), r.text);
  r = await request(U, 'PUT', '/api/settings', { hf_token: 'sekrit' });
  check('settings: hf_token stored', r.status === 200, r.text);

  // ---- download to completion, with the token --------------------------------
  const t1 = await startDownload('test-org/aidreams-260k');
  let t = await waitTask(t1, ['completed', 'failed']);
  check('download: aidreams completed', t && t.status === 'completed' && t.percent === 100 && t.bytes_done === t.bytes_total && t.bytes_total > 900000, t);
  check('download: the token was sent as a Bearer header', hub.log().filter((l) => l.url.includes('resolve')).every((l) => l.auth === 'Bearer sekrit'));
  hub.control({ require_token: '' });
  await request(U, 'PUT', '/api/settings', { hf_token: '' });
  checkCache('test-org/aidreams-260k', 'aidreams');
  r = await request(U, 'POST', '/api/models/download', { model_id: 'test-org/aidreams-260k' });
  const t1b = r.json && r.json.task_id;
  t = t1b && await waitTask(t1b, ['completed', 'failed']);
  check('download again: completes without fetching any file', t && t.status === 'completed' &&
    hub.log().filter((l) => l.url.includes('/test-org/aidreams-260k/resolve/')).length ===
    hub.repos.get('test-org/aidreams-260k').entries.length, t);

  r = await request(U, 'GET', '/api/models/search?query=aidreams-260k&author=test-org&sort=likes&limit=5');
  check('search: is_downloaded true after the download (fresh query)', r.status === 200 &&
    r.json.data.find((m) => m.model_id === 'test-org/aidreams-260k').is_downloaded === true &&
    r.json.data.find((m) => m.model_id === 'test-org/aidreams-260k-mlx-4bit').is_downloaded === false, r.text);

  r = await request(U, 'GET', '/api/models/local');
  const local = r.json && r.json.data.find((m) => m.id === 'test-org/aidreams-260k');
  check('local: lists the downloaded model with size, files and config summary', local &&
    local.size_bytes === hub.repos.get('test-org/aidreams-260k').entries.reduce((a, e) => a + e.size, 0) &&
    local.files.length === hub.repos.get('test-org/aidreams-260k').entries.length &&
    local.config.architecture === 'LlamaForCausalLM' && local.config.context_length === 128 &&
    local.config.params_estimate > 200000 && local.supported === true && local.revision === hub.repos.get('test-org/aidreams-260k').sha, local);

  // ---- usable at once ------------------------------------------------------
  r = await request(U, 'POST', '/v1/completions', { model: 'test-org/aidreams-260k', prompt: 'Once upon', max_tokens: 8, temperature: 0 });
  check('downloaded model answers /v1/completions by its id', r.status === 200 && r.json.choices && typeof r.json.choices[0].text === 'string' && r.json.usage.completion_tokens > 0, r.text);

  // ---- delete: 409 while loaded ---------------------------------------------
  r = await request(U, 'POST', '/admin/models/load', { model: 'test-org/aidreams-260k' });
  check('admin load of the downloaded model', r.status === 200, r.text);
  r = await request(U, 'DELETE', '/api/models/test-org/aidreams-260k');
  check('delete while loaded -> 409 model_loaded', isError(r, 409, 'model_loaded'), r.text);
  r = await request(U, 'POST', '/admin/models/unload', { model: 'test-org/aidreams-260k' });
  check('admin unload', r.status === 200, r.text);
  r = await request(U, 'DELETE', '/api/models/test-org/aidreams-260k');
  check('delete -> 200 and the folder is gone', r.status === 200 && r.json.deleted === true && !fs.existsSync(repoDir('test-org/aidreams-260k')), r.text);
  r = await request(U, 'DELETE', '/api/models/test-org/aidreams-260k');
  check('delete again -> 404', isError(r, 404, 'model_not_found'), r.text);

  // ---- a model from another tool is listed -------------------------------------
  const other = path.join(models, 'models--elsewhere--plain/snapshots/abc1234');
  fs.mkdirSync(other, { recursive: true });
  fs.writeFileSync(path.join(other, 'config.json'), '{"architectures":["GPT2LMHeadModel"],"model_type":"gpt2"}');
  r = await request(U, 'GET', '/api/models/local');
  const plain = r.json && r.json.data.find((m) => m.id === 'elsewhere/plain');
  check('local: a foreign cache folder is listed as unsupported with a reason', plain && plain.supported === false &&
    typeof plain.unsupported_reason === 'string' && plain.unsupported_reason.length > 0, plain);

  // ---- throttled download: SSE progress at least once a second ----------------
  hub.control({ throttle_bps: 2_000_000 });
  const t2 = await startDownload('test-org/random-a');
  const sse = await readProgress(t2);
  const evs = sse.events;
  const running = evs.filter((e) => e.ev.status === 'downloading');
  let maxGap = 0;
  for (let i = 1; i < evs.length; i++) maxGap = Math.max(maxGap, evs[i].t - evs[i - 1].t);
  check('progress: SSE stream', sse.status === 200 && /text\/event-stream/.test(sse.type), sse.type);
  check('progress: several downloading events, gaps under 1.1 s', running.length >= 4 && maxGap < 1100, { n: running.length, maxGap });
  check('progress: events carry bytes, percent, speed, ETA and the file', running.some((e) =>
    e.ev.bytes_done > 0 && e.ev.bytes_total > 6_000_000 && e.ev.percent > 0 && e.ev.percent < 100 &&
    e.ev.speed_bps > 500_000 && e.ev.speed_bps < 4_000_000 && e.ev.eta_seconds > 0 && e.ev.current_file === 'model.safetensors'), running.slice(-2).map((e) => e.ev));
  check('progress: bytes never go backwards', running.every((e, i) => i === 0 || e.ev.bytes_done >= running[i - 1].ev.bytes_done));
  check('progress: stream ends with completed', evs.length > 0 && evs[evs.length - 1].ev.status === 'completed', evs.length && evs[evs.length - 1].ev);
  checkCache('test-org/random-a', 'random-a');

  // ---- pause / resume / cancel --------------------------------------------------
  hub.control({ throttle_bps: 1_000_000 });
  const t3 = await startDownload('test-org/random-b');
  await waitFor(async () => ((await task(t3)) || {}).bytes_done > 1_000_000, 15000, 100);
  r = await request(U, 'POST', `/api/models/download/${t3}/pause`);
  check('pause -> paused', r.status === 200 && r.json.status === 'paused', r.text);
  const partial = fs.readdirSync(path.join(repoDir('test-org/random-b'), 'blobs')).filter((f) => f.endsWith('.incomplete'));
  check('pause keeps the partial blob', partial.length === 1);
  r = await request(U, 'POST', `/api/models/download/${t3}/pause`);
  check('pause twice -> 409', isError(r, 409), r.text);
  hub.control({ throttle_bps: 0 });
  r = await request(U, 'POST', `/api/models/download/${t3}/resume`);
  check('resume -> queued', r.status === 200 && ['queued', 'starting', 'downloading'].includes(r.json.status), r.text);
  t = await waitTask(t3, ['completed', 'failed']);
  check('resumed download completes', t && t.status === 'completed', t);
  check('resume continued the partial blob with Range', rangeRequests('test-org/random-b').length > 0, hub.log().slice(-3));
  checkCache('test-org/random-b', 'random-b after pause');

  hub.control({ throttle_bps: 500_000 });
  const t4 = await startDownload('test-org/random-c');
  r = await request(U, 'POST', '/api/models/download', { model_id: 'test-org/random-c' });
  check('second download of the same model -> 409', isError(r, 409, 'download_in_progress'), r.text);
  await waitFor(async () => ((await task(t4)) || {}).bytes_done > 200_000, 15000, 100);
  r = await request(U, 'DELETE', '/api/models/test-org/random-c');
  check('delete while downloading -> 409', isError(r, 409, 'download_in_progress'), r.text);
  r = await request(U, 'POST', `/api/models/download/${t4}/cancel`);
  check('cancel -> cancelled', r.status === 200 && r.json.status === 'cancelled', r.text);
  const left = fs.existsSync(path.join(repoDir('test-org/random-c'), 'blobs')) ?
    fs.readdirSync(path.join(repoDir('test-org/random-c'), 'blobs')).filter((f) => f.endsWith('.incomplete')) : [];
  check('cancel deletes the partial blob', left.length === 0, left);
  r = await request(U, 'POST', `/api/models/download/${t4}/cancel`);
  check('cancel twice -> 409', isError(r, 409), r.text);
  r = await request(U, 'GET', `/api/models/download/${t4}`);
  check('GET one task', r.status === 200 && r.json.id === t4 && r.json.status === 'cancelled' && r.json.model_id === 'test-org/random-c', r.text);
  r = await request(U, 'GET', '/api/models/download/nope');
  check('GET an unknown task -> 404', isError(r, 404, 'task_not_found'), r.text);
  r = await request(U, 'POST', '/api/models/download/nope/pause');
  check('unknown task -> 404', isError(r, 404), r.text);
  r = await request(U, 'GET', '/api/models/download/nope/progress');
  check('progress of an unknown task -> 404', isError(r, 404), r.text);

  // ---- SIGKILL mid-file, restart on the same state: resumes with Range -----------
  fs.rmSync(repoDir('test-org/random-c'), { recursive: true, force: true });
  hub.control({ throttle_bps: 1_000_000 });
  const t5 = await startDownload('test-org/random-c');
  await waitFor(async () => ((await task(t5)) || {}).bytes_done > 1_500_000, 15000, 100);
  await sleep(1100); // let a progress row reach SQLite
  process.kill(srv.pid, 'SIGKILL');
  srv.stop();
  const partC = path.join(repoDir('test-org/random-c'), 'blobs');
  const partSize = fs.readdirSync(partC).filter((f) => f.endsWith('.incomplete'))
    .map((f) => fs.statSync(path.join(partC, f)).size)[0] || 0;
  check('killed daemon left a partial blob', partSize > 1_000_000, partSize);
  hub.control({ throttle_bps: 0 });
  const stateDir = srv.stateDir;
  const oldRun = srv.runDir;
  srv = await startServer(yaml, { stateDir });
  U = srv.url;
  t = await waitTask(t5, ['completed', 'failed'], 30000);
  check('after restart the task resumed by itself and completed', t && t.status === 'completed', t);
  const ranges = rangeRequests('test-org/random-c').map((l) => Number(/bytes=(\d+)-/.exec(l.range)[1]));
  check('the resumed file was requested with Range from the partial size', ranges.some((s) => s === partSize), { ranges, partSize });
  checkCache('test-org/random-c', 'random-c after restart');
  r = await request(U, 'GET', '/api/models/downloads');
  check('the task list survived the restart', r.status === 200 && [t1, t2, t3, t4, t5].every((id) => r.json.data.some((x) => x.id === id)) &&
    r.json.data.find((x) => x.id === t4).status === 'cancelled', r.text.slice(0, 300));
  const killedReports = sanitizerReports(oldRun);
  check('no sanitizer reports from the killed daemon', killedReports.length === 0, killedReports.slice(0, 5));
  oldRuns.push(oldRun); // it holds the state dir: removed at the end

  // ---- SIGTERM mid-file: a prompt, clean stop; the next start resumes ------------
  hub.control({ throttle_bps: 1_000_000 });
  const t10 = await startDownload('test-org/random-d');
  await waitFor(async () => ((await task(t10)) || {}).bytes_done > 1_000_000, 15000, 100);
  const termStart = Date.now();
  srv.stop();
  const termMs = Date.now() - termStart;
  const sr = sanitizerReports(srv.runDir);
  // stop.sh kills what has not stopped after 10 s; nginx's own quit takes ~4 s here.
  check('SIGTERM during a download stops the daemon without being killed', termMs < 8000 && !isAlive(srv.pid), termMs);
  check('no sanitizer reports after a clean stop mid-download', sr.length === 0, sr.slice(0, 5));
  const partD = path.join(repoDir('test-org/random-d'), 'blobs');
  const partDSize = fs.readdirSync(partD).filter((f) => f.endsWith('.incomplete'))
    .map((f) => fs.statSync(path.join(partD, f)).size)[0] || 0;
  hub.control({ throttle_bps: 0 });
  const oldRun2 = srv.runDir;
  srv = await startServer(yaml, { stateDir });
  U = srv.url;
  oldRuns.push(oldRun2);
  t = await waitTask(t10, ['completed', 'failed'], 30000);
  check('after a clean stop the task resumes on start and completes', t && t.status === 'completed' &&
    rangeRequests('test-org/random-d').some((l) => l.range === `bytes=${partDSize}-`), { t, partDSize });

  // ---- dropped connection: retried with Range ------------------------------------
  hub.control({ drop_after_bytes: 100_000 });
  const t6 = await startDownload('test-org/aidreams-260k-mlx-4bit');
  t = await waitTask(t6, ['completed', 'failed'], 30000);
  check('download survives a dropped connection', t && t.status === 'completed', t);
  check('the server saw a Range request after the drop', rangeRequests('test-org/aidreams-260k-mlx-4bit').some((l) => l.range === 'bytes=100000-'),
    rangeRequests('test-org/aidreams-260k-mlx-4bit'));
  checkCache('test-org/aidreams-260k-mlx-4bit', 'mlx-4bit');

  // ---- corrupt blob rejected ----------------------------------------------------
  hub.control({ corrupt: ['test-org/aidreams-260k-sharded/model-00002-of-00002.safetensors'] });
  const t7 = await startDownload('test-org/aidreams-260k-sharded');
  t = await waitTask(t7, ['completed', 'failed'], 30000);
  const bad = hub.repos.get('test-org/aidreams-260k-sharded').entries.find((e) => e.path === 'model-00002-of-00002.safetensors');
  check('corrupt file: task failed naming the file and the hash', t && t.status === 'failed' &&
    /model-00002-of-00002\.safetensors/.test(t.error) && /corrupt/.test(t.error) && t.error.includes(bad.lfs.oid), t);
  const blobs7 = fs.readdirSync(path.join(repoDir('test-org/aidreams-260k-sharded'), 'blobs'));
  check('corrupt file: its blob was deleted', !blobs7.some((f) => f.startsWith(bad.lfs.oid)), blobs7);
  hub.control({ corrupt: [] });
  r = await request(U, 'POST', `/api/models/download/${t7}/resume`);
  t = await waitTask(t7, ['completed', 'failed'], 30000);
  check('failed task resumed after the hub is fixed: completed', r.status === 200 && t && t.status === 'completed', t);

  // ---- unsafe path in the repo listing -------------------------------------------
  const t8 = await startDownload('test-org/evil');
  t = await waitTask(t8, ['completed', 'failed'], 15000);
  check('repo listing with ../ paths: task failed', t && t.status === 'failed' && /unsafe file path/.test(t.error), t);
  check('repo listing with ../ paths: nothing escaped', !fs.existsSync(path.join(models, 'escaped.txt')) &&
    !fs.existsSync(path.join(tmp, 'escaped.txt')) && !fs.existsSync(path.join(repoDir('test-org/evil'), 'escaped.txt')));

  // ---- at most two downloads at once ---------------------------------------------
  hub.control({ throttle_bps: 200_000 });
  const qs = [];
  for (const id of ['q-org/one', 'q-org/two', 'q-org/three']) qs.push(await startDownload(id));
  let states = [];
  await waitFor(async () => {
    states = await Promise.all(qs.map(async (id) => (await task(id)).status));
    return states.filter((x) => x === 'downloading').length === 2;
  }, 10000, 100);
  check('two downloads run, the third waits queued', states.filter((x) => x === 'downloading').length === 2 &&
    states[2] === 'queued', states);
  hub.control({ throttle_bps: 0 });
  let done = [];
  for (const id of qs) done.push((await waitTask(id, ['completed', 'failed'])).status);
  check('the queued download runs when a slot frees', done.every((x) => x === 'completed'), done);

  // ---- a hub without the tree API: files from siblings (blobs=true) --------------
  hub.control({ no_tree: true });
  const t9 = await startDownload('other-org/aidreams-copy');
  t = await waitTask(t9, ['completed', 'failed'], 15000);
  check('no tree API: the file list comes from siblings and the download completes', t && t.status === 'completed', t);
  hub.control({ no_tree: false });
  checkCache('other-org/aidreams-copy', 'siblings-only');

  // ---- pause while the hub is slow to answer: no waiting for it --------------------
  hub.control({ tree_delay_ms: 20000 });
  const t11 = await startDownload('test-org/random-d');
  await waitFor(async () => hub.log().some((l) => l.url.startsWith('/api/models/test-org/random-d/tree/')), 5000, 50);
  const pauseStart = Date.now();
  r = await request(U, 'POST', `/api/models/download/${t11}/pause`);
  check('pause during a slow hub call answers at once', r.status === 200 && r.json.status === 'paused' &&
    Date.now() - pauseStart < 2000, { ms: Date.now() - pauseStart, body: r.text });
  hub.control({ tree_delay_ms: 0 });
  r = await request(U, 'POST', `/api/models/download/${t11}/cancel`);
  check('cancel a paused task', r.status === 200 && r.json.status === 'cancelled', r.text);

  // ---- not enough disk space --------------------------------------------------------
  const nHuge = hub.log().length;
  const t12 = await startDownload('test-org/huge');
  t = await waitTask(t12, ['completed', 'failed'], 15000);
  check('a repo larger than the free disk space fails before any file is fetched', t && t.status === 'failed' &&
    /not enough disk space/.test(t.error) && !hub.log().slice(nHuge).some((l) => l.url.includes('/resolve/')), t);

  // ---- resolve headers that disagree with the listing ------------------------------
  hub.control({ bad_linked_etag: true });
  const t13 = await startDownload('test-org/aidreams-260k');
  t = await waitTask(t13, ['completed', 'failed'], 15000);
  check('X-Linked-Etag other than the listed sha256: task failed naming both', t && t.status === 'failed' &&
    /advertises sha256 0{64}/.test(t.error) && t.error.includes(hub.repos.get('test-org/aidreams-260k').entries.find((e) => e.lfs).lfs.oid), t);
  hub.control({ bad_linked_etag: false });
  await request(U, 'POST', `/api/models/download/${t13}/resume`);
  t = await waitTask(t13, ['completed', 'failed'], 15000);
  check('resumed once the hub agrees: completed', t && t.status === 'completed', t);

  // ---- unreachable hub ------------------------------------------------------------
  r = await request(U, 'PUT', '/api/settings', { hf_endpoint: 'http://127.0.0.1:9' });
  r = await request(U, 'GET', '/api/models/search?query=unreachable');
  check('search: unreachable hub -> 502 hub_unreachable', isError(r, 502, 'hub_unreachable') && /127\.0\.0\.1:9/.test(r.json.error.message), r.text);
  r = await request(U, 'POST', '/api/models/download', { model_id: 'test-org/random-a' });
  check('download: unreachable hub -> 502 hub_unreachable', isError(r, 502, 'hub_unreachable'), r.text);
  await request(U, 'PUT', '/api/settings', { hf_endpoint: hub.url });

  // ---- CLI: pull (progress bar, interrupt + resume) and ls ----------------------
  const home = path.join(tmp, 'clihome');
  const cliEnv = { ...process.env, HF_HOME: home, HF_ENDPOINT: hub.url };
  let c = await runCli(['pull', 'test-org/aidreams-260k'], cliEnv);
  const snapDir = path.join(home, 'hub/models--test-org--aidreams-260k/snapshots', hub.repos.get('test-org/aidreams-260k').sha);
  check('pull: exit 0, prints the snapshot dir, progress on stderr', c.code === 0 && c.stdout.trim() === snapDir &&
    /100\.0%/.test(c.stderr), c);
  check('pull: files verified into the cache', fs.existsSync(path.join(snapDir, 'model.safetensors')) &&
    sha256(path.join(snapDir, 'model.safetensors')) === sha256(path.join(FIX, 'aidreams-260k/model.safetensors')));
  hub.control({ throttle_bps: 1_000_000 });
  c = await runCli(['pull', 'test-org/random-a'], cliEnv, 1500);
  const cliBlobs = path.join(home, 'hub/models--test-org--random-a/blobs');
  const cliPart = fs.existsSync(cliBlobs) ? fs.readdirSync(cliBlobs).filter((f) => f.endsWith('.incomplete'))
    .map((f) => fs.statSync(path.join(cliBlobs, f)).size)[0] : 0;
  check('pull: SIGINT stops it with 130, keeping the partial blob', c.code === 130 && cliPart > 100_000 &&
    /resume/.test(c.stderr) && /\d B\/s|KB\/s|MB\/s/.test(c.stderr) && /ETA/.test(c.stderr), { code: c.code, cliPart, err: c.stderr.slice(-300) });
  hub.control({ throttle_bps: 0 });
  const nLog = hub.log().length;
  c = await runCli(['pull', 'test-org/random-a'], cliEnv);
  check('pull again: resumes with Range and completes', c.code === 0 &&
    hub.log().slice(nLog).some((l) => l.range === `bytes=${cliPart}-`), { code: c.code, err: c.stderr.slice(-300) });
  c = await runCli(['ls'], cliEnv);
  check('ls: a table of local models', c.code === 0 && /^MODEL\s+SIZE/.test(c.stdout) &&
    /test-org\/aidreams-260k\s+\d/.test(c.stdout) && /test-org\/random-a /.test(c.stdout), c.stdout);
  hub.control({ require_token: 'clitoken' });
  c = await runCli(['pull', 'test-org/aidreams-260k-mlx-4bit'], cliEnv);
  check('pull: without HF_TOKEN a gated repo fails naming 401 and the token', c.code === 1 && /401/.test(c.stderr) && /HF_TOKEN/.test(c.stderr), c.stderr);
  c = await runCli(['pull', 'test-org/aidreams-260k-mlx-4bit'], { ...cliEnv, HF_TOKEN: 'clitoken' });
  check('pull: with HF_TOKEN it succeeds', c.code === 0, c.stderr.slice(-300));
  hub.control({ require_token: '' });
  c = await runCli(['ls'], { ...process.env, HF_HOME: path.join(tmp, 'empty-home') });
  check('ls: an empty cache says so', c.code === 0 && /no models in/.test(c.stdout), c.stdout);
  c = await runCli(['pull', '../etc'], cliEnv);
  check('pull: unsafe id -> exit 2', c.code === 2 && /invalid model id/.test(c.stderr), c.stderr);
  c = await runCli(['pull', 'test-org/nope'], cliEnv);
  check('pull: unknown repo -> exit 1 with the hub 404', c.code === 1 && /404/.test(c.stderr), c.stderr);

  const reports = sanitizerReports(srv.runDir);
  check('no sanitizer reports', reports.length === 0, reports.slice(0, 5));
} catch (e) {
  check('test ran without exceptions', false, e.stack);
} finally {
  srv.cleanup();
  for (const d of oldRuns) fs.rmSync(d, { recursive: true, force: true });
  await hub.close();
  fs.rmSync(tmp, { recursive: true, force: true });
  finish();
}
