// test_auth.mjs - API keys through the real nginx + daemon: open while no key
// exists; once one does, /v1 and /admin need it (Bearer or x-api-key), a
// missing or wrong key gets 401 in the caller's protocol format, scopes are
// enforced, revoked keys stop working, usage is counted, and the key never
// shows up in GET /api/keys or in any log file.  Also through the real
// Anthropic (x-api-key or Bearer authToken) and OpenAI (Bearer) SDKs.
import fs from 'node:fs';
import path from 'node:path';
import { createRequire } from 'node:module';
import { check, finish, startServer, request, sanitizerReports, REPO } from './lib.mjs';

const require = createRequire(path.join(REPO, 'tests/package.json'));
const Anthropic = require('@anthropic-ai/sdk').default;
const OpenAI = require('openai').default;

function isOpenAIError(r, status) {
  const e = r.json && r.json.error;
  return r.status === status && e && typeof e.message === 'string' && e.message.length > 0 &&
    typeof e.type === 'string' && 'code' in e && 'param' in e;
}

function isAnthropicError(r, status, type) {
  return r.status === status && r.json && r.json.type === 'error' && r.json.error &&
    r.json.error.type === type && typeof r.json.error.message === 'string';
}

// Every file the run directory holds (daemon log, nginx logs, JSON log).
function allLogs(dir) {
  let out = '';
  for (const name of fs.readdirSync(dir, { withFileTypes: true })) {
    const p = path.join(dir, name.name);
    if (name.isDirectory()) out += allLogs(p);
    else if (/\.(log|jsonl)$/.test(name.name)) out += fs.readFileSync(p, 'utf8');
  }
  return out;
}

const srv = await startServer('workers: 2\nlog_file: @RUN_DIR@/daemon.jsonl\nlog_level: debug\n');
try {
  const U = srv.url;
  // A /v1 path that exists whatever else is implemented: with a valid key
  // it gets past auth (anything but 401/403), without one it gets 401.
  const V1 = '/v1/messages/count_tokens';
  const body = { model: 'no-such-model', messages: [{ role: 'user', content: 'hi' }] };

  // ---- no keys: open -------------------------------------------------------
  let r = await request(U, 'POST', V1, body);
  check('no keys: /v1 is open', r.status !== 401 && r.status !== 403, r.text);
  r = await request(U, 'GET', '/admin/health');
  check('no keys: /admin is open', r.status === 200, r.text);
  r = await request(U, 'GET', '/api/keys');
  check('GET /api/keys starts empty', r.status === 200 && Array.isArray(r.json) && r.json.length === 0, r.text);

  // ---- creating keys ---------------------------------------------------------
  r = await request(U, 'POST', '/api/keys', { name: 'ci' });
  const k1 = r.json || {};
  check('POST /api/keys creates (201) and shows the key once',
    r.status === 201 && /^mlxm-[0-9a-f]{40}$/.test(k1.key) && k1.id > 0 && k1.name === 'ci' &&
    k1.key.startsWith(k1.prefix) && k1.prefix.length < k1.key.length &&
    JSON.stringify(k1.scopes) === '["inference"]' && k1.requests === 0 && k1.revoked_at === null, r.text);
  r = await request(U, 'POST', '/api/keys', { name: 'ops', scopes: ['inference', 'admin'] });
  const k2 = r.json || {};
  check('admin key created', r.status === 201 && JSON.stringify(k2.scopes) === '["inference","admin"]', r.text);
  r = await request(U, 'POST', '/api/keys', { name: 'adm', scopes: ['admin'] });
  const k3 = r.json || {};
  check('admin-only key created', r.status === 201 && k3.key !== k2.key, r.text);

  for (const [name, b, param] of [
    ['missing name', {}, 'name'],
    ['empty name', { name: '' }, 'name'],
    ['name not a string', { name: 5 }, 'name'],
    ['unknown scope', { name: 'x', scopes: ['root'] }, 'scopes'],
    ['empty scopes', { name: 'x', scopes: [] }, 'scopes'],
    ['scopes not an array', { name: 'x', scopes: 'admin' }, 'scopes'],
    ['unknown field', { name: 'x', key: 'mlxm-mine' }, 'key'],
  ]) {
    r = await request(U, 'POST', '/api/keys', b);
    check(`POST /api/keys ${name} -> 422`, isOpenAIError(r, 422) && r.json.error.param === param, r.text);
  }
  r = await request(U, 'POST', '/api/keys', '{"name":');
  check('POST /api/keys malformed JSON -> 400', isOpenAIError(r, 400), r.text);

  // ---- /v1 now needs a key ---------------------------------------------------
  r = await request(U, 'POST', V1, body);
  check('missing key on /v1/messages -> 401 Anthropic format', isAnthropicError(r, 401, 'authentication_error'), r.text);
  r = await request(U, 'GET', '/v1/models');
  check('missing key on /v1/models -> 401 OpenAI format',
    isOpenAIError(r, 401) && r.json.error.type === 'authentication_error' &&
    r.json.error.code === 'invalid_api_key' && /Bearer/.test(r.headers.get('www-authenticate') || ''), r.text);
  r = await request(U, 'POST', '/v1/chat/completions', { model: 'x', messages: [] }, { authorization: 'Bearer mlxm-wrong' });
  check('wrong Bearer key on /v1/chat/completions -> 401 OpenAI format', isOpenAIError(r, 401), r.text);
  r = await request(U, 'POST', V1, body, { 'x-api-key': 'mlxm-' + '0'.repeat(40) });
  check('wrong x-api-key on /v1/messages -> 401 Anthropic format', isAnthropicError(r, 401, 'authentication_error'), r.text);
  r = await request(U, 'POST', V1, body, { authorization: 'Basic ' + Buffer.from('u:' + k1.key).toString('base64') });
  check('Basic auth is not a Bearer key -> 401', isAnthropicError(r, 401, 'authentication_error'), r.text);

  r = await request(U, 'POST', V1, { ...body, messages: [{ role: 'user', content: 'a'.repeat(500000) }] });
  check('a large unauthenticated body still gets a clean 401', isAnthropicError(r, 401, 'authentication_error'), r.text);

  r = await request(U, 'POST', V1, body, { authorization: `Bearer ${k1.key}` });
  check('Bearer key passes on /v1', r.status !== 401 && r.status !== 403, r.text);
  r = await request(U, 'POST', V1, body, { authorization: `bearer ${k1.key}` });
  check('the Bearer scheme is case-insensitive', r.status !== 401 && r.status !== 403, r.text);
  r = await request(U, 'POST', V1, body, { 'x-api-key': k1.key });
  check('x-api-key passes on /v1', r.status !== 401 && r.status !== 403, r.text);
  r = await request(U, 'GET', '/v1/models', undefined, { authorization: `Bearer ${k1.key}` });
  check('Bearer key passes on /v1/models', r.status !== 401 && r.status !== 403, r.text);

  // ---- the real SDKs: Anthropic sends x-api-key (or a Bearer authToken), OpenAI Bearer
  const sdkErr = async (fn) => { try { await fn(); return null; } catch (e) { return e; } };
  const countWith = (opts) => new Anthropic({ baseURL: U, maxRetries: 0, ...opts })
    .messages.countTokens({ model: 'no-such-model', messages: [{ role: 'user', content: 'hi' }] });
  let e = await sdkErr(() => countWith({ apiKey: k1.key }));
  check('Anthropic SDK with apiKey gets past auth (404 for the model)', e && e.status === 404, e && e.error);
  e = await sdkErr(() => countWith({ apiKey: null, authToken: k1.key }));
  check('Anthropic SDK with authToken (Bearer) gets past auth', e && e.status === 404, e && e.error);
  e = await sdkErr(() => countWith({ apiKey: 'mlxm-nope' }));
  check('Anthropic SDK with a wrong key -> AuthenticationError',
    e instanceof Anthropic.AuthenticationError && e.error?.error?.type === 'authentication_error', e && e.error);
  const models = await sdkErr(() => new OpenAI({ baseURL: U + '/v1', apiKey: k1.key, maxRetries: 0 }).models.list());
  check('OpenAI SDK with the key lists models', models === null, models && models.message);
  e = await sdkErr(() => new OpenAI({ baseURL: U + '/v1', apiKey: 'mlxm-nope', maxRetries: 0 }).models.list());
  check('OpenAI SDK with a wrong key -> AuthenticationError',
    e instanceof OpenAI.AuthenticationError && e.code === 'invalid_api_key', e && e.message);

  // ---- scopes ----------------------------------------------------------------
  r = await request(U, 'GET', '/admin/health');
  check('missing key on /admin -> 401', isOpenAIError(r, 401), r.text);
  r = await request(U, 'GET', '/admin/health', undefined, { authorization: `Bearer ${k1.key}` });
  check('inference key on /admin -> 403', isOpenAIError(r, 403) && r.json.error.type === 'permission_error', r.text);
  r = await request(U, 'GET', '/admin/health', undefined, { authorization: `Bearer ${k2.key}` });
  check('admin key on /admin -> 200', r.status === 200, r.text);
  r = await request(U, 'POST', V1, body, { 'x-api-key': k3.key });
  check('admin-only key on /v1/messages -> 403 Anthropic format', isAnthropicError(r, 403, 'permission_error'), r.text);
  r = await request(U, 'GET', '/api/health');
  check('/api stays open', r.status === 200, r.text);

  // ---- listing: no secrets, usage counted -----------------------------------
  r = await request(U, 'GET', '/api/keys');
  const list = r.json || [];
  const row1 = list.find((k) => k.id === k1.id) || {};
  check('GET /api/keys lists 3 keys without secrets',
    r.status === 200 && list.length === 3 && list.every((k) => !('key' in k) && !('key_hash' in k)) &&
    !r.text.includes(k1.key) && !r.text.includes(k2.key) && !r.text.includes(k3.key), r.text);
  check('requests and last_used_at recorded per key',
    row1.requests === 7 && typeof row1.last_used_at === 'string' &&
    (list.find((k) => k.id === k3.id) || {}).requests === 0, JSON.stringify(row1));

  // ---- revoking --------------------------------------------------------------
  r = await request(U, 'DELETE', `/api/keys/${k1.id}`);
  check('DELETE /api/keys/{id} -> 204', r.status === 204, r.text);
  r = await request(U, 'POST', V1, body, { 'x-api-key': k1.key });
  check('revoked key -> 401', isAnthropicError(r, 401, 'authentication_error'), r.text);
  r = await request(U, 'DELETE', `/api/keys/${k1.id}`);
  check('revoking twice -> 404', isOpenAIError(r, 404), r.text);
  r = await request(U, 'DELETE', '/api/keys/abc');
  check('revoking a bad id -> 404', isOpenAIError(r, 404), r.text);
  r = await request(U, 'GET', '/api/keys');
  check('revoked key listed with revoked_at',
    typeof ((r.json || []).find((k) => k.id === k1.id) || {}).revoked_at === 'string', r.text);
  r = await request(U, 'POST', V1, body, { 'x-api-key': k2.key });
  check('other keys keep working', r.status !== 401 && r.status !== 403, r.text);

  await request(U, 'DELETE', `/api/keys/${k2.id}`);
  await request(U, 'DELETE', `/api/keys/${k3.id}`);
  r = await request(U, 'POST', V1, body);
  check('all keys revoked: /v1 open again', r.status !== 401 && r.status !== 403, r.text);

  // ---- secrets never logged ---------------------------------------------------
  const logs = allLogs(srv.runDir);
  check('logs were written', logs.length > 0 && logs.includes('/v1/messages'));
  check('no key appears in any log', ![k1.key, k2.key, k3.key].some((k) => logs.includes(k)));
  check('no key hash material in logs', ![k1.key, k2.key].some((k) => logs.includes(k.slice(5, 25))));
  check('no sanitizer reports', sanitizerReports(srv.runDir).length === 0, sanitizerReports(srv.runDir));
} catch (e) {
  check('unexpected exception', false, e.stack || String(e));
} finally {
  srv.cleanup();
}
finish();
