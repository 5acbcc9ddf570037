// test_keys_cli.mjs - API keys from `mlx-manager keys` on the daemon's own
// database while it runs, per-key model allow-lists (403 in the caller's
// protocol format for other models), require_api_key (what tools/run.sh sets
// for a non-loopback HOST) and CORS for the configured origins only.
import fs from 'node:fs';
import path from 'node:path';
import { check, finish, startServer, request, runBin, sanitizerReports } from './lib.mjs';

const MODEL = 'random-demo-NOT-A-REAL-MODEL';
const chat = (model) => ({ model, max_tokens: 2, messages: [{ role: 'user', content: 'hi' }] });
const bearer = (k) => ({ authorization: `Bearer ${k}` });

function keys(srv, ...args) {
  return runBin(['keys', '--state-dir', srv.stateDir, ...args]);
}

const servers = [];
try {
  // --- the CLI and model allow-lists ---
  const srv = await startServer('');
  servers.push(srv);
  const U = srv.url;
  let r = keys(srv, 'create', 'ci', '--scopes', 'inference', '--models', `${MODEL},other-model`);
  const key = r.stdout.trim();
  check('keys create prints the key once on stdout', r.status === 0 && /^mlxm-[0-9a-f]{40}$/.test(key), r.stdout + r.stderr);
  r = keys(srv, 'create', 'ops', '--scopes', 'inference,admin');
  const admin = r.stdout.trim();
  check('keys create with two scopes', r.status === 0 && /^mlxm-/.test(admin), r.stderr);
  r = keys(srv, 'list', '--json');
  const list = JSON.parse(r.stdout || '[]');
  const ci = list.find((k) => k.name === 'ci');
  check('keys list --json shows scopes and models, no secret',
    r.status === 0 && ci && JSON.stringify(ci.models) === JSON.stringify([MODEL, 'other-model']) &&
    JSON.stringify(ci.scopes) === '["inference"]' && !r.stdout.includes(key), r.stdout);
  r = keys(srv, 'list');
  check('keys list prints a table', r.status === 0 && /ID\s+NAME/.test(r.stdout) && r.stdout.includes('ci') && !r.stdout.includes(key), r.stdout);
  check('keys create without a name is a usage error', keys(srv, 'create').status === 2);
  check('keys create with an unknown scope is a usage error', keys(srv, 'create', 'x', '--scopes', 'root').status === 2);
  check('keys with an unknown action is a usage error', keys(srv, 'frobnicate').status === 2);
  r = runBin(['keys', '--state-dir', path.join(srv.runDir, 'nowhere'), 'list']);
  check('keys on a missing database says where it looked', r.status === 1 && r.stderr.includes('no database at'), r.stderr);

  r = await request(U, 'POST', '/v1/chat/completions', chat(MODEL), bearer(key));
  check('a limited key may use its model', r.status === 200, r.text.slice(0, 300));
  r = await request(U, 'POST', '/v1/chat/completions', chat('some-other'), bearer(key));
  check('a limited key gets 403 (OpenAI format) for another model',
    r.status === 403 && r.json && r.json.error && r.json.error.type === 'permission_error' && r.json.error.message.includes('some-other'), r.text);
  r = await request(U, 'POST', '/v1/messages', { model: 'some-other', max_tokens: 2, messages: [{ role: 'user', content: 'hi' }] },
    { 'x-api-key': key, 'anthropic-version': '2023-06-01' });
  check('and 403 in Anthropic format on /v1/messages',
    r.status === 403 && r.json && r.json.type === 'error' && r.json.error.type === 'permission_error', r.text);
  r = await request(U, 'POST', '/v1/chat/completions', chat('some-other'), bearer(admin));
  check('an unlimited key reaches the handler (404 unknown model)', r.status === 404, r.status);
  r = keys(srv, 'models', String(ci.id), '--all');
  check('keys models ID --all lifts the limit', r.status === 0, r.stderr);
  r = await request(U, 'POST', '/v1/chat/completions', chat('some-other'), bearer(key));
  check('the lifted key reaches the handler', r.status === 404, r.status);
  r = keys(srv, 'models', String(ci.id), 'a\nb');
  check('keys models: a name with a newline is refused', r.status !== 0);

  r = await request(U, 'POST', '/api/keys', { name: 'web', models: [MODEL] }, bearer(admin));
  check('POST /api/keys accepts models', r.status === 201 && JSON.stringify(r.json.models) === JSON.stringify([MODEL]), r.text);
  const web = r.json && r.json.key;
  r = await request(U, 'POST', '/v1/completions', { model: 'x', prompt: 'a', max_tokens: 1 }, bearer(web));
  check('that key is limited too', r.status === 403, r.status);
  r = await request(U, 'POST', '/api/keys', { name: 'bad', models: [] }, bearer(admin));
  check('POST /api/keys rejects an empty models array', r.status === 422 && r.json.error.param === 'models', r.text);
  r = await request(U, 'POST', '/api/keys', { name: 'bad', models: ['x'.repeat(300)] }, bearer(admin));
  check('POST /api/keys rejects an overlong model name', r.status === 422, r.status);

  r = keys(srv, 'list', '--json');
  const ciUsed = JSON.parse(r.stdout || '[]').find((k) => k.name === 'ci');
  check('per-key usage: requests and tokens of OpenAI requests counted', ciUsed && ciUsed.requests >= 4 &&
    ciUsed.prompt_tokens > 0 && ciUsed.completion_tokens >= 1 && ciUsed.completion_tokens <= 2, ciUsed);
  r = keys(srv, 'revoke', String(ci.id));
  check('keys revoke', r.status === 0, r.stderr);
  r = await request(U, 'POST', '/v1/chat/completions', chat(MODEL), bearer(key));
  check('the revoked key gets 401', r.status === 401, r.status);
  check('revoking again says so', keys(srv, 'revoke', String(ci.id)).status === 1);
  r = await request(U, 'GET', '/api/keys');
  const rows = r.json && r.json.data ? r.json.data : r.json;
  const webRow = Array.isArray(rows) && rows.find((k) => k.name === 'web');
  check('per-key usage visible in /api/keys', webRow && webRow.requests >= 1, r.text.slice(0, 400));

  const logs = fs.readdirSync(srv.runDir).filter((f) => f.endsWith('.log'))
    .map((f) => fs.readFileSync(path.join(srv.runDir, f), 'utf8')).join('\n');
  check('no key appears in any log', ![key, admin, web].some((k) => k && logs.includes(k)));
  srv.stop();
  check('no sanitizer reports (keys)', sanitizerReports(srv.runDir).length === 0, sanitizerReports(srv.runDir).slice(0, 5));

  // --- require_api_key ---
  const prot = await startServer('require_api_key: true\n');
  servers.push(prot);
  const P = prot.url;
  r = await request(P, 'GET', '/api/health');
  check('require_api_key: /api/health stays open', r.status === 200);
  r = await request(P, 'GET', '/api/profiles');
  check('require_api_key: /api needs a key even before one exists, and says how to make one',
    r.status === 401 && r.json.error.message.includes('keys create'), r.text);
  r = await request(P, 'GET', '/v1/models');
  check('require_api_key: /v1 needs a key', r.status === 401);
  r = await request(P, 'GET', '/metrics');
  check('require_api_key: /metrics needs a key', r.status === 401);
  const inf = keys(prot, 'create', 'inf').stdout.trim();
  const adm = keys(prot, 'create', 'adm', '--scopes', 'inference,admin').stdout.trim();
  r = await request(P, 'GET', '/api/profiles', undefined, bearer(inf));
  check('require_api_key: an inference key gets 403 on /api', r.status === 403, r.status);
  r = await request(P, 'GET', '/api/profiles', undefined, bearer(adm));
  check('require_api_key: an admin key passes /api', r.status === 200, r.status);
  r = await request(P, 'GET', '/metrics', undefined, bearer(adm));
  check('require_api_key: an admin key reads /metrics', r.status === 200, r.status);
  r = await request(P, 'GET', '/v1/models', undefined, bearer(inf));
  check('require_api_key: an inference key passes /v1', r.status === 200, r.status);
  prot.stop();

  // --- CORS ---
  const cors = await startServer('cors_origins: "https://ok.example, https://two.example"\n');
  servers.push(cors);
  const C = cors.url;
  let res = await fetch(`${C}/v1/chat/completions`, { method: 'OPTIONS', headers: {
    origin: 'https://ok.example', 'access-control-request-method': 'POST', 'access-control-request-headers': 'authorization, content-type' } });
  check('CORS preflight from an allowed origin: 204 with the headers',
    res.status === 204 && res.headers.get('access-control-allow-origin') === 'https://ok.example' &&
    /POST/.test(res.headers.get('access-control-allow-methods') || '') &&
    /authorization/.test(res.headers.get('access-control-allow-headers') || ''), [res.status, [...res.headers]]);
  res = await fetch(`${C}/v1/chat/completions`, { method: 'OPTIONS', headers: {
    origin: 'https://evil.example', 'access-control-request-method': 'POST' } });
  check('CORS preflight from another origin: no CORS headers', res.headers.get('access-control-allow-origin') === null, [res.status, [...res.headers]]);
  res = await fetch(`${C}/api/health`, { headers: { origin: 'https://two.example' } });
  check('CORS: a simple request from an allowed origin gets Allow-Origin and Vary',
    res.status === 200 && res.headers.get('access-control-allow-origin') === 'https://two.example' && /Origin/.test(res.headers.get('vary') || ''));
  res = await fetch(`${C}/api/health`, { headers: { origin: 'https://evil.example' } });
  check('CORS: other origins get none', res.headers.get('access-control-allow-origin') === null);
  cors.stop();
} catch (e) {
  check('no exception', false, e.stack);
} finally {
  for (const s of servers) s.cleanup();
  finish();
}
