// test_lifecycle.mjs - graceful stop and crash safety.
//  - SIGTERM drains: a short stream in flight finishes normally; long ones
//    are cancelled after shutdown_grace_seconds and their clients get a
//    final event (chat and completions streams end with an error event,
//    code generation_cancelled, and [DONE]);
//    the daemon then exits and new requests get nginx's JSON 503.
//  - SIGKILL during generation leaves a consistent database
//    (PRAGMA integrity_check), and a restarted daemon serves from it.
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { check, finish, startServer, request, binPath, isAlive, waitFor, sanitizerReports } from './lib.mjs';

// A model slow enough (~150 tokens/s here) that a long stream outlives the grace.
function makeModel(dir) {
  const r = spawnSync(binPath(), ['mkmodel', '--arch', 'qwen3', '--hidden', '512', '--layers', '8', '--heads', '8',
    '--kv-heads', '4', '--ffn', '1536', '--vocab', '512', '--dtype', 'f32', '--out', dir, '--force'], { encoding: 'utf8' });
  return r.status === 0;
}

// Streams a request; resolves with the whole text and when the first bytes came.
function stream(url, body, headers = {}) {
  let firstResolve;
  const first = new Promise((r) => { firstResolve = r; });
  const done = (async () => {
    try {
      const res = await fetch(url, { method: 'POST', headers: { 'content-type': 'application/json', ...headers }, body: JSON.stringify(body) });
      const reader = res.body.getReader();
      const dec = new TextDecoder();
      let text = '';
      for (;;) {
        const { value, done: end } = await reader.read();
        if (end) break;
        text += dec.decode(value, { stream: true });
        if (text.includes('data: ')) firstResolve();
      }
      firstResolve();
      return { status: res.status, text, end: Date.now() };
    } catch (e) {
      firstResolve();
      return { status: -1, text: String(e), end: Date.now() };
    }
  })();
  return { first, done };
}

function integrity(dbFile) {
  const r = spawnSync('sqlite3', [dbFile, 'PRAGMA integrity_check; SELECT count(*) FROM request_log;'], { encoding: 'utf8' });
  return r.status === 0 ? r.stdout.trim().split('\n') : [r.stderr];
}

let srv = null;
try {
  srv = await startServer('shutdown_grace_seconds: 5\n');
  const model = path.join(srv.runDir, 'slow-model');
  check('slow model made', makeModel(model));
  const U = srv.url;
  const user = [{ role: 'user', content: 'go' }];
  // Load it first so the streams start together.
  const warm = await request(U, 'POST', '/v1/chat/completions', { model, messages: user, max_tokens: 1 });
  check('model loads', warm.status === 200, warm.text.slice(0, 300));

  const short = stream(`${U}/v1/chat/completions`, { model, messages: user, max_tokens: 3, ignore_eos: true, stream: true });
  const longOpenAI = stream(`${U}/v1/chat/completions`, { model, messages: user, max_tokens: 20000, ignore_eos: true, stream: true });
  const longCompletion = stream(`${U}/v1/completions`, { model, prompt: 'go', max_tokens: 20000, ignore_eos: true, stream: true });
  await Promise.all([short.first, longOpenAI.first, longCompletion.first]);
  const termAt = Date.now();
  process.kill(srv.pid, 'SIGTERM');
  const [s, lo, lc] = await Promise.all([short.done, longOpenAI.done, longCompletion.done]);

  check('the short stream finished normally', s.status === 200 && s.text.includes('"finish_reason":"length"') && s.text.trim().endsWith('data: [DONE]'), s.text.slice(-300));
  check('the long OpenAI stream got a final event after the grace', lo.status === 200 && lo.text.trim().endsWith('data: [DONE]') &&
    lo.text.includes('"code":"generation_cancelled"') &&
    lo.end - termAt >= 4500 && lo.end - termAt < 15000, [lo.end - termAt, lo.text.slice(-400)]);
  check('the long completions stream got a final event after the grace', lc.status === 200 && lc.text.trim().endsWith('data: [DONE]') &&
    lc.text.includes('"code":"generation_cancelled"') &&
    lc.end - termAt >= 4500 && lc.end - termAt < 15000, [lc.end - termAt, lc.text.slice(-400)]);
  check('the daemon exits after the drain', await waitFor(() => !isAlive(srv.pid), 15000));
  const log = fs.readFileSync(path.join(srv.runDir, 'daemon.log'), 'utf8');
  check('the log says what was cancelled', /cancelled 2 generations/.test(log) && /"msg":"stopped"/.test(log), log.split('\n').slice(-6).join('\n'));
  const after = await request(U, 'GET', '/api/health');
  check('with the daemon gone nginx answers JSON 503', after.status === 503 && after.json && after.json.error.code === 'daemon_unavailable');
  srv.stop();
  check('no sanitizer reports (SIGTERM)', sanitizerReports(srv.runDir).length === 0, sanitizerReports(srv.runDir).slice(0, 5));

  // SIGKILL in the middle of generating and writing the request log.
  const dbFile = path.join(srv.stateDir, 'mlx-manager.db');
  const srv2 = await startServer('', { stateDir: srv.stateDir });
  const U2 = srv2.url;
  const busy = [];
  for (let i = 0; i < 4; i++) busy.push(stream(`${U2}/v1/chat/completions`, { model, messages: user, max_tokens: 20000, ignore_eos: true, stream: true }));
  const quick = [];
  for (let i = 0; i < 20; i++) quick.push(request(U2, 'POST', '/v1/completions', { model, prompt: 'x', max_tokens: 1 }).catch(() => null));
  await Promise.all(busy.map((b) => b.first));
  await Promise.all(quick);
  process.kill(srv2.pid, 'SIGKILL');
  await Promise.all(busy.map((b) => b.done));
  check('daemon killed', await waitFor(() => !isAlive(srv2.pid), 5000));
  const ic = integrity(dbFile);
  check('after SIGKILL: PRAGMA integrity_check is ok', ic[0] === 'ok', ic);
  check('the request log rows written before the kill are there', Number(ic[1]) >= 20, ic);
  srv2.stop();
  const srv3 = await startServer('', { stateDir: srv.stateDir });
  const again = await request(srv3.url, 'GET', '/api/logs/requests?limit=5');
  check('a restarted daemon serves from the same database', again.status === 200 && again.json.data.length === 5, again.text.slice(0, 200));
  srv3.cleanup();
  fs.rmSync(srv2.runDir, { recursive: true, force: true });
} catch (e) {
  check('no exception', false, e.stack);
} finally {
  if (srv) srv.cleanup();
  finish();
}
