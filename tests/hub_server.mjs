// hub_server.mjs - a local stand-in for the Hugging Face Hub HTTP API, for
// tests: 127.0.0.1 only, no dependencies.  It serves repos built at start
// from model folders (or explicit file maps):
//   GET /api/models?search=&author=&sort=&direction=&limit=   search
//   GET /api/models/{org}/{name}[/revision/{rev}][?blobs=true] info (sha, siblings)
//   GET /api/models/{org}/{name}/tree/{rev}?recursive=true    files with oid, size, lfs
//   GET /{org}/{name}/resolve/{rev}/{path}                    file (LFS: 302 to /_lfs/...)
// with X-Repo-Commit, ETag, X-Linked-Etag, X-Linked-Size and Range (206).
// Knobs (POST /_control, JSON): throttle_bps, drop_after_bytes (once),
// corrupt (list of "org/name/path"), require_token, no_tree (the tree API
// answers 404, as on mirrors without it), tree_delay_ms (a slow hub),
// bad_linked_etag (X-Linked-Etag disagrees with the tree);
// GET /_control/log lists
// the requests seen (method, url, range, auth).
//
// Use: import { startHubServer } from './hub_server.mjs'; or run
// `node tests/hub_server.mjs PORT ORG/NAME=DIR ...` by hand.
import crypto from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import path from 'node:path';

const LFS_SUFFIXES = ['.safetensors', '.bin', '.gguf'];

function listFiles(dir, prefix = '') {
  const out = [];
  for (const ent of fs.readdirSync(dir, { withFileTypes: true })) {
    const rel = prefix + ent.name;
    const full = path.join(dir, ent.name);
    if (ent.isDirectory()) out.push(...listFiles(full, rel + '/'));
    else if (ent.isFile()) out.push(rel);
  }
  return out.sort();
}

function gitOid(buf) {
  return crypto.createHash('sha1').update(`blob ${buf.length}\0`).update(buf).digest('hex');
}

// Parameter counts per dtype from a safetensors header, as the hub reports them.
function safetensorsParams(buf) {
  const params = {};
  if (buf.length < 8) return params;
  const n = Number(buf.readBigUInt64LE(0));
  if (n <= 0 || 8 + n > buf.length) return params;
  let header;
  try { header = JSON.parse(buf.subarray(8, 8 + n).toString('utf8')); } catch { return params; }
  for (const [name, t] of Object.entries(header)) {
    if (name === '__metadata__' || !t || !Array.isArray(t.shape)) continue;
    const count = t.shape.reduce((a, b) => a * b, 1);
    params[t.dtype] = (params[t.dtype] || 0) + count;
  }
  return params;
}

// spec: {id, dir?, files?: {path: Buffer}, listed_sizes?: {path: n}, downloads, likes,
// tags, lastModified}
function buildRepo(spec) {
  const files = new Map();
  if (spec.dir) {
    for (const rel of listFiles(spec.dir)) files.set(rel, fs.readFileSync(path.join(spec.dir, rel)));
  }
  for (const [p, b] of Object.entries(spec.files || {})) files.set(p, Buffer.from(b));
  const entries = [];
  const params = {};
  let config = null;
  for (const [p, buf] of files) {
    const lfs = LFS_SUFFIXES.some((s) => p.endsWith(s));
    // listed_sizes lets a repo claim sizes it does not have (a disk-space test).
    const listed = spec.listed_sizes?.[p] ?? buf.length;
    const e = { path: p, size: listed, oid: gitOid(buf), buf, lfs: null };
    if (lfs) {
      const sha = crypto.createHash('sha256').update(buf).digest('hex');
      e.lfs = { oid: sha, size: listed, pointerSize: 134 };
      e.oid = gitOid(Buffer.from(`version https://git-lfs.github.com/spec/v1\noid sha256:${sha}\nsize ${buf.length}\n`));
      if (p.endsWith('.safetensors')) {
        for (const [dt, c] of Object.entries(safetensorsParams(buf))) params[dt] = (params[dt] || 0) + c;
      }
    }
    if (p === 'config.json') {
      try { config = JSON.parse(buf.toString('utf8')); } catch { config = null; }
    }
    entries.push(e);
  }
  const sha = crypto.createHash('sha1')
    .update(spec.id + entries.map((e) => e.path + e.oid).join('\n')).digest('hex');
  const total = Object.values(params).reduce((a, b) => a + b, 0);
  return {
    id: spec.id,
    sha,
    entries,
    config,
    safetensors: total ? { parameters: params, total } : undefined,
    downloads: spec.downloads ?? 0,
    likes: spec.likes ?? 0,
    tags: spec.tags ?? ['safetensors'],
    lastModified: spec.lastModified ?? '2025-01-01T00:00:00.000Z',
  };
}

function sendJson(res, status, obj, headers = {}) {
  const body = JSON.stringify(obj);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body), ...headers });
  res.end(body);
}

export async function startHubServer(specs, opts = {}) {
  const repos = new Map();
  for (const s of specs) repos.set(s.id, buildRepo(s));
  const state = {
    throttle_bps: 0, drop_after_bytes: 0, corrupt: [], require_token: '', no_tree: false, tree_delay_ms: 0,
    bad_linked_etag: false,
    log: [],
  };
  const sockets = new Set();

  function repoSummary(r) {
    return {
      _id: r.sha.slice(0, 24), id: r.id, modelId: r.id, author: r.id.split('/')[0],
      downloads: r.downloads, likes: r.likes, tags: r.tags, lastModified: r.lastModified,
      private: false, sha: r.sha,
      ...(r.safetensors ? { safetensors: r.safetensors } : {}),
      ...(r.config ? { config: r.config } : {}),
    };
  }

  function resolveRev(r, rev) {
    return rev === 'main' || rev === r.sha ? r.sha : null;
  }

  async function sendFile(req, res, r, e, headers) {
    let body = e.buf;
    if (state.corrupt.includes(`${r.id}/${e.path}`)) {
      body = Buffer.from(body);
      body[Math.floor(body.length / 2)] ^= 0xff;
    }
    let start = 0;
    let end = body.length - 1;
    let status = 200;
    const range = req.headers.range;
    if (range) {
      const m = /^bytes=(\d+)-(\d*)$/.exec(range);
      if (!m || Number(m[1]) >= body.length) {
        res.writeHead(416, { 'content-range': `bytes */${body.length}` });
        res.end();
        return;
      }
      start = Number(m[1]);
      if (m[2]) end = Math.min(end, Number(m[2]));
      status = 206;
      headers['content-range'] = `bytes ${start}-${end}/${body.length}`;
    }
    headers['content-length'] = end - start + 1;
    headers['accept-ranges'] = 'bytes';
    headers['content-type'] = 'application/octet-stream';
    res.writeHead(status, headers);
    if (req.method === 'HEAD') { res.end(); return; }
    const chunk = state.throttle_bps ? Math.max(1024, Math.floor(state.throttle_bps / 20)) : 1 << 20;
    let pos = start;
    let sent = 0;
    while (pos <= end) {
      if (res.destroyed) return;
      const n = Math.min(chunk, end - pos + 1);
      if (state.drop_after_bytes && sent + n > state.drop_after_bytes) {
        const cut = state.drop_after_bytes - sent;
        state.drop_after_bytes = 0;
        if (cut > 0) res.write(body.subarray(pos, pos + cut));
        await new Promise((r) => setTimeout(r, 50));
        res.socket?.destroy();
        return;
      }
      const ok = res.write(body.subarray(pos, pos + n));
      pos += n;
      sent += n;
      if (!ok) await new Promise((r) => res.once('drain', r));
      if (state.throttle_bps) await new Promise((r) => setTimeout(r, 50));
    }
    res.end();
  }

  async function handle(req, res) {
    const url = new URL(req.url, 'http://x');
    const p = decodeURIComponent(url.pathname);
    if (p === '/_control' && req.method === 'POST') {
      let body = '';
      for await (const c of req) body += c;
      Object.assign(state, JSON.parse(body || '{}'));
      return sendJson(res, 200, { ok: true });
    }
    if (p === '/_control/log') return sendJson(res, 200, state.log);
    state.log.push({
      method: req.method, url: req.url, range: req.headers.range || null,
      auth: req.headers.authorization || null,
    });
    if (state.require_token && req.headers.authorization !== `Bearer ${state.require_token}`) {
      return sendJson(res, 401, { error: 'Invalid credentials in Authorization header' },
        { 'x-error-code': 'Unauthorized' });
    }
    const notFound = () => sendJson(res, 404, { error: 'Repository not found' }, { 'x-error-code': 'RepoNotFound' });

    if (p === '/api/models') {
      const q = (url.searchParams.get('search') || '').toLowerCase();
      const author = url.searchParams.get('author');
      const sort = url.searchParams.get('sort');
      const dir = Number(url.searchParams.get('direction') || -1);
      const limit = Number(url.searchParams.get('limit') || 1000);
      let list = [...repos.values()].filter((r) => r.id.toLowerCase().includes(q) &&
        (!author || r.id.split('/')[0] === author));
      if (sort && ['downloads', 'likes', 'lastModified'].includes(sort)) {
        list.sort((a, b) => (a[sort] < b[sort] ? -1 : a[sort] > b[sort] ? 1 : 0) * (dir < 0 ? -1 : 1));
      }
      return sendJson(res, 200, list.slice(0, limit).map(repoSummary));
    }
    let m = /^\/api\/models\/([^/]+\/[^/]+)(?:\/revision\/([^/]+))?$/.exec(p);
    if (m) {
      const r = repos.get(m[1]);
      if (!r) return notFound();
      if (!resolveRev(r, m[2] || 'main')) return sendJson(res, 404, { error: `Invalid rev id: ${m[2]}` }, { 'x-error-code': 'RevisionNotFound' });
      const blobs = url.searchParams.get('blobs') === 'true';
      return sendJson(res, 200, {
        ...repoSummary(r),
        siblings: r.entries.map((e) => (blobs ? {
          rfilename: e.path, size: e.size, blobId: e.oid,
          ...(e.lfs ? { lfs: { sha256: e.lfs.oid, size: e.size, pointerSize: 134 } } : {}),
        } : { rfilename: e.path })),
      });
    }
    m = /^\/api\/models\/([^/]+\/[^/]+)\/tree\/([^/]+)$/.exec(p);
    if (m) {
      const r = repos.get(m[1]);
      if (!r) return notFound();
      if (state.tree_delay_ms) await new Promise((resolve) => setTimeout(resolve, state.tree_delay_ms));
      if (state.no_tree) return sendJson(res, 404, { error: 'Not found' });
      if (!resolveRev(r, m[2])) return sendJson(res, 404, { error: `Invalid rev id: ${m[2]}` });
      return sendJson(res, 200, r.entries.map((e) => ({
        type: 'file', oid: e.oid, size: e.size, path: e.path, ...(e.lfs ? { lfs: e.lfs } : {}),
      })));
    }
    m = /^\/_lfs\/([^/]+\/[^/]+)\/([0-9a-f]{64})$/.exec(p);
    if (m) {
      const r = repos.get(m[1]);
      const e = r && r.entries.find((x) => x.lfs && x.lfs.oid === m[2]);
      if (!e) return notFound();
      return sendFile(req, res, r, e, { etag: `"${e.lfs.oid}"` });
    }
    m = /^\/([^/]+\/[^/]+)\/resolve\/([^/]+)\/(.+)$/.exec(url.pathname);
    if (m) {
      const r = repos.get(decodeURIComponent(m[1]));
      if (!r) return notFound();
      const sha = resolveRev(r, decodeURIComponent(m[2]));
      if (!sha) return sendJson(res, 404, { error: 'Revision not found' }, { 'x-error-code': 'RevisionNotFound' });
      const file = m[3].split('/').map(decodeURIComponent).join('/');
      const e = r.entries.find((x) => x.path === file);
      if (!e) return sendJson(res, 404, { error: 'Entry not found' }, { 'x-error-code': 'EntryNotFound' });
      const headers = { 'x-repo-commit': sha };
      if (e.lfs) {
        res.writeHead(302, {
          ...headers, location: `/_lfs/${r.id}/${e.lfs.oid}`,
          'x-linked-etag': `"${state.bad_linked_etag ? '0'.repeat(64) : e.lfs.oid}"`,
          'x-linked-size': String(e.size), etag: `"${e.oid}"`, 'content-length': 0,
        });
        return res.end();
      }
      return sendFile(req, res, r, e, { ...headers, etag: `"${e.oid}"` });
    }
    return sendJson(res, 404, { error: 'Not found' });
  }

  const server = http.createServer((req, res) => {
    handle(req, res).catch((err) => {
      if (!res.headersSent) sendJson(res, 500, { error: String(err) });
      else res.destroy();
    });
  });
  server.on('connection', (s) => { sockets.add(s); s.on('close', () => sockets.delete(s)); });
  await new Promise((resolve) => server.listen(opts.port || 0, '127.0.0.1', resolve));
  const port = server.address().port;
  return {
    port,
    url: `http://127.0.0.1:${port}`,
    repos,
    state,
    control(knobs) { Object.assign(state, knobs); },
    log() { return state.log; },
    close() {
      for (const s of sockets) s.destroy();
      return new Promise((resolve) => server.close(() => resolve()));
    },
  };
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const port = Number(process.argv[2] || 0);
  const specs = process.argv.slice(3).map((a) => {
    const [id, dir] = a.split('=');
    return { id, dir };
  });
  const srv = await startHubServer(specs, { port });
  console.log(`hub server on ${srv.url} with ${specs.length} repos`);
}
