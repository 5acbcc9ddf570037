// test_pool.mjs - the model pool through nginx + daemon: GET /v1/models
// (state-dir demo model, a Hugging Face cache model, a profile pointing at
// the aidreams fixture), /admin/models/load|unload|status, /admin/memory,
// /api/servers start/stop, keep_alive idle unloading, max_loaded_models,
// and the error statuses.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { createRequire } from 'node:module';
import {
  check, finish, startServer, request, runBin, waitFor, sanitizerReports, REPO,
} from './lib.mjs';

const require = createRequire(path.join(REPO, 'tests/package.json'));
const OpenAIMod = require('openai');
const OpenAI = OpenAIMod.default || OpenAIMod;

const SHARED = path.resolve(process.env.MLXM_SHARED || path.join(path.dirname(new URL(import.meta.url).pathname), '../../../shared'));
const AIDREAMS = path.join(SHARED, 'fixtures/models/aidreams-260k');
if (!fs.existsSync(path.join(AIDREAMS, 'config.json'))) {
  console.error(`error: test fixtures not found at ${SHARED}/fixtures (set MLXM_SHARED to the shared/ folder beside the repository)`);
  console.log('0 passed, 1 failed');
  process.exit(1);
}

const DEMO = 'random-demo-NOT-A-REAL-MODEL';
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'mlxm-pool-'));
const hub = path.join(tmp, 'hub');
const snap = path.join(hub, 'models--acme--tiny-chat/snapshots/rev1');
fs.mkdirSync(path.join(hub, 'models--acme--tiny-chat/refs'), { recursive: true });
const mk = runBin(['mkmodel', '--arch', 'llama', '--preset', 'tiny', '--dtype', 'mlx-4bit', '--out', snap]);
if (mk.status !== 0) {
  fs.rmSync(tmp, { recursive: true, force: true });
  throw new Error(`mkmodel failed: ${mk.stderr}`);
}
fs.writeFileSync(path.join(hub, 'models--acme--tiny-chat/refs/main'), 'rev1');
const notModel = path.join(tmp, 'not-a-model');
fs.mkdirSync(notModel);
fs.writeFileSync(path.join(notModel, 'config.json'), '{"architectures":["GPT2LMHeadModel"],"model_type":"gpt2"}');

function isError(r, status, code, param) {
  const e = r.json && r.json.error;
  return r.status === status && e && typeof e.message === 'string' && e.message.length > 0 &&
    typeof e.type === 'string' && (code === undefined || e.code === code) &&
    (param === undefined || e.param === param);
}

const byId = (list, id) => (list || []).find((m) => m.id === id);
const status = async (U) => (await request(U, 'GET', '/admin/models/status')).json;
const loadedNames = async (U) => (await status(U)).models.map((m) => m.name);

const srv = await startServer(`models_dir: ${hub}\nworkers: 4\n`);
try {
  const U = srv.url;
  check('run.sh created the demo model once in the state dir',
    fs.existsSync(path.join(srv.stateDir, 'models', DEMO, 'config.json')));

  let r = await request(U, 'POST', '/api/profiles', { name: 'aid', model_path: AIDREAMS, context_length: 64 });
  check('profile created', r.status === 201, r.text);
  const profileId = r.json && r.json.id;

  // ---- GET /v1/models -------------------------------------------------------
  r = await request(U, 'GET', '/v1/models');
  const list = r.json || {};
  check('GET /v1/models is an OpenAI list', r.status === 200 && list.object === 'list' &&
    Array.isArray(list.data) && list.data.every((m) => typeof m.id === 'string' &&
      m.object === 'model' && typeof m.created === 'number' && typeof m.owned_by === 'string' &&
      m.loaded === false && typeof m.profile === 'boolean'), r.text);
  const demo = byId(list.data, DEMO);
  check('lists the state-dir demo model', demo && demo.context_length > 0 && demo.size_bytes > 0 &&
    demo.profile === false, demo);
  const hf = byId(list.data, 'acme/tiny-chat');
  check('lists the Hugging Face cache model with its org', hf && hf.owned_by === 'acme' &&
    hf.size_bytes > 0, hf);
  const aid = byId(list.data, 'aid');
  check('lists the profile with its context_length', aid && aid.profile === true &&
    aid.context_length === 64, aid);

  const client = new OpenAI({ baseURL: `${U}/v1`, apiKey: 'unused' });
  const sdkIds = [];
  for await (const m of client.models.list()) sdkIds.push(m.id);
  check('the openai SDK lists the models', sdkIds.includes(DEMO) && sdkIds.includes('acme/tiny-chat') &&
    sdkIds.includes('aid'), sdkIds);
  const one = await client.models.retrieve(DEMO);
  check('the openai SDK retrieves one model', one.id === DEMO && one.object === 'model', one);
  r = await request(U, 'GET', '/v1/models/acme/tiny-chat');
  check('GET /v1/models/org/name', r.status === 200 && r.json.id === 'acme/tiny-chat' &&
    r.json.owned_by === 'acme', r.text);
  r = await request(U, 'GET', '/v1/models/nothing-here');
  check('GET /v1/models/unknown: 404 model_not_found', isError(r, 404, 'model_not_found'), r.text);

  // ---- admin load / status / memory ----------------------------------------
  r = await request(U, 'POST', '/admin/models/load', { model: DEMO });
  check('admin load of the demo model', r.status === 200 && r.json.state === 'ready' &&
    r.json.name === DEMO && r.json.memory.total_bytes > 0 && r.json.kv_blocks_total > 0, r.text);
  r = await request(U, 'GET', '/v1/models');
  check('/v1/models shows it loaded', byId(r.json.data, DEMO).loaded === true &&
    byId(r.json.data, 'acme/tiny-chat').loaded === false, r.text);
  r = await request(U, 'POST', '/admin/models/load', { model: 'acme/tiny-chat', pin: true, keep_alive: '5m' });
  check('admin load by hub id with pin and keep_alive', r.status === 200 && r.json.pinned === true &&
    r.json.keep_alive === 300, r.text);
  let st = await status(U);
  const d = (st.models || []).find((m) => m.name === DEMO);
  check('status lists both with memory by part', st.models.length === 2 && d &&
    d.memory.weights_bytes > 0 && d.memory.kv_bytes > 0 && d.memory.scratch_bytes > 0 &&
    d.memory.total_bytes === d.memory.weights_bytes + d.memory.kv_bytes + d.memory.scratch_bytes &&
    d.leases === 0 && d.queue_depth === 0 && d.requests_served === 0 && d.uptime_seconds >= 0 &&
    d.kv_blocks_free === d.kv_blocks_total && d.max_concurrency >= 1, st);
  const tiny = st.models.find((m) => m.name === 'acme/tiny-chat');
  check('K/V in f16 for the MLX 4-bit model, f32 for the f32 demo model',
    tiny && tiny.kv_dtype === 'f16' && d.kv_dtype === 'f32', st);
  r = await request(U, 'GET', '/admin/memory');
  const mem = r.json || {};
  const used = st.models.reduce((a, m) => a + m.memory.total_bytes, 0);
  check('admin memory adds up', r.status === 200 && mem.budget_bytes > 0 && mem.used_bytes === used &&
    mem.free_bytes === mem.budget_bytes - used && mem.loaded_models === 2 &&
    mem.system_total_bytes >= mem.budget_bytes && Array.isArray(mem.models) && mem.models.length === 2, r.text);

  // ---- errors ----------------------------------------------------------------
  r = await request(U, 'POST', '/admin/models/load', { model: 'nobody/nothing' });
  check('unknown model: 404 model_not_found naming it', isError(r, 404, 'model_not_found') &&
    r.json.error.message.includes('nobody/nothing') && r.json.error.message.includes('/v1/models'), r.text);
  r = await request(U, 'POST', '/admin/models/load', { model: notModel });
  check('unsupported architecture: 422 with the engine message', isError(r, 422, 'unsupported_model') &&
    /gpt2|GPT2/.test(r.json.error.message), r.text);
  r = await request(U, 'POST', '/admin/models/load', { model: tmp });
  check('directory without config.json: 422', isError(r, 422, 'unsupported_model'), r.text);
  r = await request(U, 'POST', '/admin/models/load', { model: 5 });
  check('model not a string: 422 param model', isError(r, 422, undefined, 'model'), r.text);
  r = await request(U, 'POST', '/admin/models/load', {});
  check('model missing: 422 param model', isError(r, 422, undefined, 'model'), r.text);
  r = await request(U, 'POST', '/admin/models/load', { model: DEMO, pin: 'yes' });
  check('pin not a bool: 422 param pin', isError(r, 422, undefined, 'pin'), r.text);
  r = await request(U, 'POST', '/admin/models/load', { model: DEMO, keep_alive: 'soon' });
  check('bad keep_alive: 422 param keep_alive', isError(r, 422, undefined, 'keep_alive'), r.text);
  r = await request(U, 'POST', '/admin/models/load', { model: DEMO, bogus: 1 });
  check('unknown field: 422', isError(r, 422, undefined, 'bogus'), r.text);
  r = await request(U, 'POST', '/admin/models/load', '{"model":');
  check('malformed JSON: 400', isError(r, 400), r.text);
  r = await request(U, 'POST', '/admin/models/unload', { model: 'aid' });
  check('unload of a model not loaded: 404 model_not_loaded', isError(r, 404, 'model_not_loaded'), r.text);
  r = await request(U, 'GET', '/admin/models/load');
  check('GET on a POST route: 405', r.status === 405, r.text);

  // ---- /api/servers ------------------------------------------------------------
  r = await request(U, 'GET', '/api/servers');
  let srvAid = (r.json.servers || []).find((s) => s.profile === 'aid');
  check('/api/servers lists the stopped profile and the loaded models', r.status === 200 &&
    srvAid && srvAid.state === 'stopped' && srvAid.loaded === false && srvAid.id === profileId &&
    r.json.servers.filter((s) => s.loaded).length === 2 && r.json.memory.budget_bytes > 0 &&
    typeof r.json.cpu_percent === 'number', r.text);
  r = await request(U, 'POST', `/api/servers/${profileId}/start`);
  check('start a profile: 200 and loaded', r.status === 200 && r.json.state === 'ready' &&
    r.json.loaded === true && r.json.memory_bytes > 0 && r.json.memory_percent > 0 &&
    r.json.context_length === 64, r.text);
  r = await request(U, 'GET', '/api/servers');
  srvAid = (r.json.servers || []).find((s) => s.profile === 'aid');
  check('the started profile shows memory, cpu and counters', srvAid && srvAid.loaded === true &&
    srvAid.memory_bytes > 0 && typeof srvAid.cpu_percent === 'number' &&
    srvAid.requests_served === 0 && srvAid.uptime_seconds >= 0 && srvAid.state === 'ready', srvAid);
  r = await request(U, 'GET', '/v1/models');
  check('/v1/models shows the profile loaded', byId(r.json.data, 'aid').loaded === true, r.text);
  r = await request(U, 'POST', `/api/servers/${profileId}/stop`);
  check('stop a profile: 200 stopped', r.status === 200 && r.json.state === 'stopped', r.text);
  check('it is unloaded', !(await loadedNames(U)).includes('aid'));
  r = await request(U, 'POST', `/api/servers/${profileId}/stop`);
  check('stopping a stopped profile is fine', r.status === 200, r.text);
  r = await request(U, 'POST', '/api/servers/99999/start');
  check('start of an unknown profile: 404', isError(r, 404, 'profile_not_found'), r.text);
  r = await request(U, 'POST', '/api/servers/abc/start');
  check('start with a non-numeric id: 404', isError(r, 404), r.text);

  // ---- leases through a real generation --------------------------------------
  // A profile with one slot and no queue; EOS banned so the stream runs for a
  // while (about 8,000 tokens) and the client reads only its first chunk.
  const demoDir = path.join(srv.stateDir, 'models', DEMO);
  const gen = JSON.parse(fs.readFileSync(path.join(demoDir, 'generation_config.json'), 'utf8'));
  const eos = [].concat(gen.eos_token_id, JSON.parse(fs.readFileSync(path.join(demoDir, 'config.json'), 'utf8')).eos_token_id);
  const logitBias = Object.fromEntries(eos.map((id) => [String(id), -100]));
  r = await request(U, 'POST', '/api/profiles', {
    name: 'solo', model_path: DEMO, max_concurrency: 1, queue_size: 0, context_length: 8192,
  });
  check('single-slot profile created', r.status === 201, r.text);
  const ctl = new AbortController();
  const res = await fetch(`${U}/v1/chat/completions`, {
    method: 'POST', signal: ctl.signal, headers: { 'content-type': 'application/json' },
    body: JSON.stringify({
      model: 'solo', stream: true, max_tokens: 8000, logit_bias: logitBias,
      messages: [{ role: 'user', content: 'Say a lot.' }],
    }),
  });
  const reader = res.body.getReader();
  const first = await reader.read();
  check('a long stream starts', res.status === 200 && !first.done);
  st = await status(U);
  const solo = (st.models || []).find((m) => m.profile === 'solo');
  check('the running request holds a lease', solo && solo.leases === 1 && solo.max_concurrency === 1, solo);
  r = await request(U, 'POST', '/v1/chat/completions', {
    model: 'solo', max_tokens: 1, messages: [{ role: 'user', content: 'hi' }],
  });
  check('no slot and no queue: 429 queue_full with Retry-After', isError(r, 429, 'queue_full') &&
    Number(r.headers.get('retry-after')) > 0, r.text);
  r = await request(U, 'POST', '/admin/models/unload', { model: 'solo' });
  check('unload while a request runs: 409 model_busy', isError(r, 409, 'model_busy'), r.text);
  r = await request(U, 'GET', '/api/servers');
  const soloServer = (r.json.servers || []).find((s) => s.profile === 'solo');
  check('/api/servers shows the running request', soloServer && soloServer.leases === 1 &&
    soloServer.state === 'ready', soloServer);
  ctl.abort();
  await reader.cancel().catch(() => {});
  check('the lease ends when the client goes away', await waitFor(async () => {
    const m = ((await status(U)).models || []).find((x) => x.profile === 'solo');
    return m && m.leases === 0 && m.requests_served === 1;
  }, 15000, 100));
  r = await request(U, 'POST', '/v1/chat/completions', {
    model: 'solo', max_tokens: 4, messages: [{ role: 'user', content: 'hi' }],
  });
  check('the slot is free again', r.status === 200, r.text);
  const after = ((await status(U)).models || []).find((x) => x.profile === 'solo');
  check('requests and tokens are counted', after && after.requests_served === 2 &&
    after.completion_tokens >= 1, after);
  r = await request(U, 'POST', '/admin/models/unload', { model: 'solo' });
  check('unload once idle', r.status === 200, r.text);

  // ---- concurrency: chats, listings and status at once --------------------------
  const servedBefore = ((await status(U)).models.find((m) => m.name === 'acme/tiny-chat') || {}).requests_served;
  const chat = (model) => request(U, 'POST', '/v1/chat/completions', {
    model, max_tokens: 8, messages: [{ role: 'user', content: 'hello there' }],
  });
  const results = await Promise.all([
    ...Array.from({ length: 16 }, () => chat('acme/tiny-chat')),
    ...Array.from({ length: 6 }, () => request(U, 'GET', '/v1/models')),
    ...Array.from({ length: 6 }, () => request(U, 'GET', '/admin/models/status')),
  ]);
  check('16 concurrent chats on one model all answer', results.slice(0, 16).every((x) => x.status === 200),
    results.slice(0, 16).map((x) => x.status));
  check('listings and status answer meanwhile', results.slice(16).every((x) => x.status === 200));
  const servedAfter = (await status(U)).models.find((m) => m.name === 'acme/tiny-chat').requests_served;
  check('every request was counted once', servedAfter - servedBefore === 16, { servedBefore, servedAfter });
  const soloResults = await Promise.all(Array.from({ length: 8 }, () => chat('solo')));
  const ok = soloResults.filter((x) => x.status === 200).length;
  check('a one-slot model with no queue answers 200 or 429', ok >= 1 &&
    soloResults.every((x) => x.status === 200 || isError(x, 429, 'queue_full')), soloResults.map((x) => x.status));
  const soloAfter = (await status(U)).models.find((m) => m.profile === 'solo');
  check('only the admitted requests were served', soloAfter && soloAfter.requests_served === ok &&
    soloAfter.leases === 0 && soloAfter.queue_depth === 0, { ok, soloAfter });
  await request(U, 'POST', '/admin/models/unload', { model: 'solo' });

  // ---- forced unload cancels what runs -------------------------------------------
  const longChat = (stream, signal) => fetch(`${U}/v1/chat/completions`, {
    method: 'POST', signal, headers: { 'content-type': 'application/json' },
    body: JSON.stringify({
      model: 'solo', stream, max_tokens: 8000, logit_bias: logitBias,
      messages: [{ role: 'user', content: 'Say a lot.' }],
    }),
  });
  const streamed = await longChat(true);
  const sreader = streamed.body.getReader();
  const sfirst = await sreader.read();
  check('a long stream runs before the forced unload', streamed.status === 200 && !sfirst.done);
  let t0 = Date.now();
  r = await request(U, 'POST', '/admin/models/unload', { model: 'solo', force: true });
  check('forced unload with a stream running answers at once', r.status === 200 &&
    Date.now() - t0 < 10000, { status: r.status, ms: Date.now() - t0, text: r.text });
  let rest = '';
  const dec = new TextDecoder();
  for (let i = 0; i < 100000; i++) {
    const c = await sreader.read();
    if (c.done) break;
    rest += dec.decode(c.value);
  }
  check('the cancelled stream ends with an error event, then [DONE]',
    rest.includes('"code":"generation_cancelled"') && rest.trimEnd().endsWith('data: [DONE]'),
    rest.slice(-300));
  check('the forced unload unloaded it', !(await loadedNames(U)).includes('solo'));
  const pending = longChat(false).then(async (res) => ({ status: res.status, json: await res.json() }));
  check('a long non-streamed request starts', await waitFor(async () => {
    const m = ((await status(U)).models || []).find((x) => x.profile === 'solo');
    return m && m.leases === 1;
  }, 15000, 50));
  t0 = Date.now();
  r = await request(U, 'POST', '/admin/models/unload', { model: 'solo', force: true });
  const cut = await pending;
  check('forced unload with a request running answers at once', r.status === 200 &&
    Date.now() - t0 < 10000, r.text);
  check('the cancelled request gets 503 generation_cancelled', cut.status === 503 &&
    cut.json.error && cut.json.error.code === 'generation_cancelled', cut);
  r = await request(U, 'POST', '/v1/chat/completions', {
    model: 'solo', max_tokens: 2, messages: [{ role: 'user', content: 'hi' }],
  });
  check('the model loads again after a forced unload', r.status === 200, r.text);
  await request(U, 'POST', '/admin/models/unload', { model: 'solo' });

  // ---- unload, keep_alive, max_loaded_models ----------------------------------
  r = await request(U, 'POST', '/admin/models/unload', { model: DEMO });
  check('admin unload', r.status === 200 && r.json.state === 'unloaded', r.text);
  check('unloaded models leave the status', !(await loadedNames(U)).includes(DEMO));
  r = await request(U, 'POST', '/admin/models/load', { model: DEMO, keep_alive: 1 });
  check('load with keep_alive 1', r.status === 200 && r.json.keep_alive === 1, r.text);
  check('idle model unloaded after keep_alive', await waitFor(async () => !(await loadedNames(U)).includes(DEMO), 5000, 200));
  check('the pinned model stays', (await loadedNames(U)).includes('acme/tiny-chat'));

  r = await request(U, 'PUT', '/api/settings', { max_loaded_models: 1 });
  check('max_loaded_models set to 1', r.status === 200, r.text);
  r = await request(U, 'POST', '/admin/models/load', { model: 'acme/tiny-chat', pin: false });
  r = await request(U, 'POST', '/admin/models/load', { model: DEMO });
  check('a second model evicts the idle one', r.status === 200 &&
    JSON.stringify(await loadedNames(U)) === JSON.stringify([DEMO]), await loadedNames(U));
  r = await request(U, 'POST', '/admin/models/load', { model: DEMO, pin: true });
  r = await request(U, 'POST', '/admin/models/load', { model: 'acme/tiny-chat' });
  check('pinned models are not evicted: 503 too_many_models', isError(r, 503, 'too_many_models') &&
    Number(r.headers.get('retry-after')) > 0, r.text);

  // ---- API keys limited to some models see only those (last: keys close /admin) ----
  r = await request(U, 'POST', '/api/keys', { name: 'aid-only', scopes: ['inference'], models: ['aid'] });
  check('key limited to the aid profile', r.status === 201 && typeof r.json.key === 'string', r.text);
  const limited = { authorization: `Bearer ${r.json && r.json.key}` };
  r = await request(U, 'GET', '/v1/models', undefined, limited);
  check('/v1/models with a limited key lists only its models', r.status === 200 &&
    JSON.stringify(r.json.data.map((m) => m.id)) === JSON.stringify(['aid']), r.text);
  r = await request(U, 'GET', `/v1/models/${DEMO}`, undefined, limited);
  check('/v1/models/{id} of another model: 404', isError(r, 404, 'model_not_found'), r.text);
  r = await request(U, 'GET', '/v1/models');
  check('/v1/models without a key once keys exist: 401', r.status === 401, r.text);
} finally {
  srv.stop();
  const reports = sanitizerReports(srv.runDir);
  check('no sanitizer reports', reports.length === 0, reports.slice(0, 5).join('\n'));
  srv.cleanup();
}

// ---- kv_cache_dtype: f32 keeps even a quantized model's K/V in f32 ----------
const srv2 = await startServer(`models_dir: ${hub}\nworkers: 4\nkv_cache_dtype: f32\n`);
try {
  const r = await request(srv2.url, 'POST', '/admin/models/load', { model: 'acme/tiny-chat' });
  const st = await status(srv2.url);
  const tiny = (st.models || []).find((m) => m.name === 'acme/tiny-chat');
  check('kv_cache_dtype: f32 applies to the MLX 4-bit model', r.status === 200 && tiny &&
    tiny.kv_dtype === 'f32', st);
} finally {
  srv2.stop();
  srv2.cleanup();
  fs.rmSync(tmp, { recursive: true, force: true });
  finish();
}
