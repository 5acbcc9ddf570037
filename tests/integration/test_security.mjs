// test_security.mjs - hostile input through the real nginx + daemon: path
// traversal in model names and ids, oversized headers and bodies,
// slowloris-style slow headers and bodies (nginx timeouts, set short here),
// header injection through the request id, and secrets kept out of logs
// and error messages.
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { check, finish, startServer, request, sanitizerReports } from './lib.mjs';

const user = [{ role: 'user', content: 'hi' }];
const isJsonError = (r) => r.json && r.json.error && typeof r.json.error.message === 'string';

// Raw HTTP: writes `parts` with `gapMs` between them, returns what came back
// (or '' when the server closed without answering) and how long it took.
function raw(port, parts, gapMs = 0, waitMs = 10000) {
  return new Promise((resolve) => {
    const t0 = Date.now();
    let out = '';
    const s = net.connect(port, '127.0.0.1');
    const timer = setTimeout(() => { s.destroy(); resolve({ out, ms: Date.now() - t0, timedOut: true }); }, waitMs);
    s.on('data', (d) => { out += d.toString(); });
    s.on('close', () => { clearTimeout(timer); resolve({ out, ms: Date.now() - t0 }); });
    s.on('error', () => {});
    s.on('connect', async () => {
      for (const p of parts) {
        if (s.destroyed) break;
        s.write(p);
        if (gapMs) await new Promise((r) => setTimeout(r, gapMs));
      }
    });
  });
}

const srv = await startServer('max_body_bytes: 64k\nhf_token: hf_SECRETTOKEN123456\n', { env: { CLIENT_TIMEOUT: '2s' } });
const U = srv.url;
try {
  // --- path traversal ---
  for (const name of ['../../../../etc', '../../../../../etc/passwd', 'models/../../..', '..', 'org/../../x', '%2e%2e/%2e%2e/etc']) {
    const r = await request(U, 'POST', '/v1/chat/completions', { model: name, messages: user, max_tokens: 1 });
    check(`model ${JSON.stringify(name)}: a clear 4xx, nothing read`, r.status >= 400 && r.status < 500 && isJsonError(r) && !/root:x:0/.test(r.text), [r.status, r.text.slice(0, 200)]);
  }
  let r = await request(U, 'DELETE', '/api/models/..%2F..%2Fetc/passwd');
  check('DELETE of a traversing model id is refused', r.status >= 400 && r.status < 500, [r.status, r.text.slice(0, 200)]);
  r = await request(U, 'POST', '/api/models/download', { model_id: '../../etc/passwd' });
  check('download of a traversing model id: 4xx', r.status >= 400 && r.status < 500 && isJsonError(r), r.text.slice(0, 200));
  r = await request(U, 'GET', '/v1/models/..%2F..%2F..%2Fetc%2Fpasswd');
  check('model lookup with an encoded traversal: 4xx', r.status >= 400 && r.status < 500 && !/root:x:0/.test(r.text), [r.status, r.text.slice(0, 200)]);
  r = await request(U, 'GET', '/../../../etc/passwd');
  check('static files never leave the static dir', !/root:x:0/.test(r.text), r.text.slice(0, 100));

  // --- oversized input ---
  r = await request(U, 'GET', '/api/health', undefined, { 'x-big': 'a'.repeat(20000) });
  check('a 20 kB header line: 400 from nginx', r.status === 400 || r.status === 431 || r.status === 494, r.status);
  const bigHeaders = {};
  for (let i = 0; i < 8; i++) bigHeaders[`x-h${i}`] = 'b'.repeat(15000);
  r = await request(U, 'GET', '/api/health', undefined, bigHeaders).catch((e) => ({ status: -1, text: String(e) }));
  check('8 x 15 kB headers: refused by nginx', r.status === 400 || r.status === 494 || r.status === -1, r.status);
  r = await request(U, 'POST', '/v1/chat/completions', JSON.stringify({ model: 'x', messages: [{ role: 'user', content: 'a'.repeat(100000) }] }));
  check('a body over max_body_bytes: JSON 413 from the daemon', r.status === 413 && isJsonError(r), [r.status, r.text.slice(0, 200)]);
  r = await request(U, 'POST', '/v1/chat/completions', '{"model":"x","messages":' + '['.repeat(100000) + ']'.repeat(100000) + '}');
  check('deeply nested JSON: a clear 4xx, daemon alive', r.status >= 400 && r.status < 500, r.status);
  check('the daemon serves after oversized input', (await request(U, 'GET', '/api/health')).status === 200);

  // --- slow clients (CLIENT_TIMEOUT=2s here) ---
  const port = srv.port;
  const slowHead = await raw(port, ['GET /api/health HTTP/1.1\r\n', 'Host: x\r\n', 'X-A: 1\r\n'], 3000, 15000);
  check('slow headers: nginx drops the connection after its timeout', !slowHead.timedOut && slowHead.ms < 12000 && !slowHead.out.includes('200 OK'), slowHead);
  const body = JSON.stringify({ model: 'x', messages: user });
  const slowBody = await raw(port, [`POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: ${body.length}\r\n\r\n`, body.slice(0, 5)], 0, 15000);
  check('a body that stops coming: 408 or a closed connection after the timeout', !slowBody.timedOut && slowBody.ms < 12000 && (slowBody.out === '' || /408/.test(slowBody.out)), slowBody);
  const many = await Promise.all(Array.from({ length: 50 }, () => raw(port, ['GET /api/health HTTP/1.1\r\n'], 0, 15000)));
  check('50 slowloris connections are all dropped', many.every((m) => !m.timedOut), many.filter((m) => m.timedOut).length);
  check('and the daemon still serves', (await request(U, 'GET', '/api/health')).status === 200);

  // --- request id injection, secrets ---
  const inj = await raw(port, ['GET /api/health HTTP/1.1\r\nHost: x\r\nConnection: close\r\nX-Request-Id: a\r\n\r\n']);
  check('responses carry nginx\'s own request id', /X-Request-Id: [0-9a-f]{32}\r\n/i.test(inj.out), inj.out.slice(0, 300));
  r = await request(U, 'GET', '/api/settings');
  check('the HF token is not shown by the settings API', !r.text.includes('hf_SECRETTOKEN123456'), r.text.slice(0, 300));
  r = await request(U, 'POST', '/v1/chat/completions', { model: 'x', messages: user }, { authorization: 'Bearer mlxm-notarealkeybutsecret0000000000000000000' });
  const logs = fs.readdirSync(srv.runDir).filter((f) => f.endsWith('.log'))
    .map((f) => fs.readFileSync(path.join(srv.runDir, f), 'utf8')).join('\n');
  check('no secret in any log (HF token, presented keys)', !logs.includes('hf_SECRETTOKEN123456') && !logs.includes('notarealkeybutsecret'));
} catch (e) {
  check('no exception', false, e.stack);
} finally {
  srv.stop();
  check('no sanitizer reports', sanitizerReports(srv.runDir).length === 0, sanitizerReports(srv.runDir).slice(0, 5));
  fs.rmSync(srv.runDir, { recursive: true, force: true });
  finish();
}
