// test_tls.mjs - `tools/run.sh` with TLS=1: nginx answers HTTPS with the
// self-signed certificate tools/cert.sh made (TLS 1.2+ only, HTTP/2 by
// ALPN), and SSE streaming works over it, through HTTP/1.1 and HTTP/2.
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import https from 'node:https';
import http2 from 'node:http2';
import path from 'node:path';
import tls from 'node:tls';
import { check, finish, startServer, sanitizerReports } from './lib.mjs';

const MODEL = 'random-demo-NOT-A-REAL-MODEL';

function httpsRequest(opts, body) {
  return new Promise((resolve, reject) => {
    const req = https.request(opts, (res) => {
      const chunks = [];
      res.on('data', (c) => chunks.push(c.toString()));
      res.on('end', () => resolve({ status: res.statusCode, headers: res.headers, chunks, text: chunks.join('') }));
    });
    req.on('error', reject);
    req.setTimeout(30000, () => req.destroy(new Error('timeout')));
    if (body) req.write(body);
    req.end();
  });
}

const srv = await startServer('', { env: { TLS: '1' } });
try {
  const certFile = path.join(srv.runDir, 'tls', 'cert.pem');
  check('run.sh made a self-signed certificate', fs.existsSync(certFile) && fs.existsSync(path.join(srv.runDir, 'tls', 'key.pem')));
  const ca = fs.readFileSync(certFile);
  const base = { host: '127.0.0.1', servername: 'localhost', port: srv.port, ca };

  const h = await httpsRequest({ ...base, path: '/api/health' });
  check('HTTPS health check with the certificate as CA', h.status === 200, h.status);
  check('no HSTS unless TLS_HSTS=1', !('strict-transport-security' in h.headers));

  const err = await httpsRequest({ host: '127.0.0.1', port: srv.port, path: '/api/health' }).then(() => null, (e) => e);
  check('a client that does not trust the certificate refuses it', err && /self.signed|unable to verify|certificate/i.test(err.message), err && err.message);

  const proto = await new Promise((resolve) => {
    const s = tls.connect({ ...base, ALPNProtocols: ['h2', 'http/1.1'] }, () => {
      const r = { version: s.getProtocol(), alpn: s.alpnProtocol };
      s.end();
      resolve(r);
    });
    s.on('error', (e) => resolve({ error: e.message }));
  });
  check('TLS 1.3 by default and HTTP/2 offered by ALPN', proto.version === 'TLSv1.3' && proto.alpn === 'h2', proto);
  const old = await new Promise((resolve) => {
    const s = tls.connect({ ...base, maxVersion: 'TLSv1.1', minVersion: 'TLSv1' }, () => { s.end(); resolve('connected'); });
    s.on('error', (e) => resolve(e.message));
  });
  check('TLS 1.1 and older are refused', old !== 'connected', old);

  // SSE over HTTPS / HTTP 1.1: several chunks, then [DONE].
  const body = JSON.stringify({ model: MODEL, stream: true, max_tokens: 16, ignore_eos: true, seed: 3,
    messages: [{ role: 'user', content: 'stream over TLS' }] });
  const s = await httpsRequest({ ...base, method: 'POST', path: '/v1/chat/completions',
    headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) } }, body);
  const events = s.text.split('\n\n').filter((e) => e.startsWith('data: '));
  check('SSE over HTTPS: an event stream of several events ending with [DONE]',
    s.status === 200 && /text\/event-stream/.test(s.headers['content-type']) && events.length >= 5 &&
    events[events.length - 1] === 'data: [DONE]', s.text.slice(0, 300));

  // SSE over HTTP/2.
  const h2Stream = () => new Promise((resolve) => {
    const client = http2.connect(`https://localhost:${srv.port}`, { ca, lookup: (host, o, cb) => (o && o.all ? cb(null, [{ address: '127.0.0.1', family: 4 }]) : cb(null, '127.0.0.1', 4)) });
    client.on('error', (e) => resolve({ error: e.message }));
    const req = client.request({ ':method': 'POST', ':path': '/v1/chat/completions', 'content-type': 'application/json' });
    let text = '';
    let status = 0;
    req.on('response', (hd) => { status = hd[':status']; });
    req.on('data', (c) => { text += c.toString(); });
    req.on('end', () => { client.close(); resolve({ status, text }); });
    req.on('error', (e) => { client.close(); resolve({ error: e.message }); });
    req.end(body);
  });
  // Count SSE events, not DATA frames: on a busy machine the whole short
  // stream can be written before nginx reads it, and then arrives in one frame.
  const h2 = await h2Stream();
  const h2Events = (h2.text || '').split('\n\n').filter((e) => e.startsWith('data: '));
  check('SSE over HTTP/2: several events ending with [DONE]', h2.status === 200 && h2Events.length >= 5 &&
    h2Events[h2Events.length - 1] === 'data: [DONE]', h2.error || h2.text.slice(-300));

  const curl = spawnSync('curl', ['-sS', '--http2', '--cacert', certFile, '--resolve', `localhost:${srv.port}:127.0.0.1`,
    '-o', '/dev/null', '-w', '%{http_version}', `https://localhost:${srv.port}/metrics`], { encoding: 'utf8', timeout: 30000 });
  check('curl verifies the certificate and speaks HTTP/2', curl.status === 0 && curl.stdout === '2', curl.stdout + curl.stderr);
} catch (e) {
  check('no exception', false, e.stack);
} finally {
  srv.stop();
  check('no sanitizer reports', sanitizerReports(srv.runDir).length === 0, sanitizerReports(srv.runDir).slice(0, 5));
  fs.rmSync(srv.runDir, { recursive: true, force: true });
  finish();
}
