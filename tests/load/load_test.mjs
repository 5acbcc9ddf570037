// load_test.mjs - `make load-test`: LOAD_CLIENTS concurrent streaming chat
// clients (default 200) through nginx for LOAD_SECONDS (default 300)
// against the small demo model.  Passes when no response is a 5xx other
// than the documented back-pressure (503 queue timeout / 429 queue full are
// counted, not failures), every 200 stream ends with [DONE], and after the
// warm-up (the first half: 64 workers' SQLite page caches and malloc arenas
// fill up first) the daemon's RSS and open fds stay flat, and once idle it
// holds as many fds as before the load.  Non-200 answers are counted by
// status and error code: only 429 queue_full and 503 queue_timeout /
// too_many_models are documented back-pressure (a 503 daemon_unavailable
// from nginx means the daemon was gone and fails the run).  Prints the
// figures (requests, statuses, RSS and fds after the warm-up and at the
// end) and "N passed, M failed".
import fs from 'node:fs';
import path from 'node:path';
import { check, finish, startServer, procStats, request } from '../integration/lib.mjs';

const CLIENTS = Number(process.env.LOAD_CLIENTS || 200);
const SECONDS = Number(process.env.LOAD_SECONDS || 300);
const MAX_TOKENS = Number(process.env.LOAD_MAX_TOKENS || 16);
const MODEL = 'random-demo-NOT-A-REAL-MODEL';
// RSS may grow this much after the warm-up (allocator noise, caches).
const RSS_SLACK_KB = Number(process.env.LOAD_RSS_SLACK_KB || 32768);

const srv = await startServer('workers: 64\nlog_level: warn\n');
const U = srv.url;
const statuses = new Map();
const codes = new Map(); // "status code" -> count, for non-200 answers
const BACKPRESSURE = new Set(['429 queue_full', '503 queue_timeout', '503 too_many_models']);
const ttfts = [];
let streamsOk = 0, streamsTruncated = 0, errors = 0, tokens = 0;
const samples = []; // {t, rssKb, fds}
const t0 = Date.now();
const deadline = t0 + SECONDS * 1000;

function pct(arr, p) {
  if (!arr.length) return 0;
  const s = [...arr].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))];
}

async function client(c) {
  let k = 0;
  while (Date.now() < deadline) {
    const start = Date.now();
    try {
      const res = await fetch(`${U}/v1/chat/completions`, {
        method: 'POST', headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ model: MODEL, stream: true, max_tokens: MAX_TOKENS, ignore_eos: true, seed: c * 100000 + k++,
          messages: [{ role: 'user', content: `client ${c} says hello` }] }),
      });
      statuses.set(res.status, (statuses.get(res.status) || 0) + 1);
      if (res.status !== 200) {
        const body = await res.text();
        let code = 'no_json';
        try { code = JSON.parse(body).error?.code || 'no_code'; } catch { /* not JSON */ }
        const key = `${res.status} ${code}`;
        codes.set(key, (codes.get(key) || 0) + 1);
        if (res.status === 429 || res.status === 503) await new Promise((r) => setTimeout(r, 200));
        continue;
      }
      const reader = res.body.getReader();
      const dec = new TextDecoder();
      let text = '';
      let first = true;
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        if (first) { ttfts.push(Date.now() - start); first = false; }
        text += dec.decode(value, { stream: true });
      }
      if (text.trim().endsWith('data: [DONE]')) {
        streamsOk++;
        tokens += (text.match(/"delta":\{"content"/g) || []).length;
      } else {
        streamsTruncated++;
      }
    } catch {
      errors++;
      await new Promise((r) => setTimeout(r, 100));
    }
  }
}

const sampler = setInterval(() => {
  try { samples.push({ t: Date.now() - t0, ...procStats(srv.pid) }); } catch { /* gone */ }
}, Math.max(1000, Math.min(10000, SECONDS * 50)));

try {
  // Load the model before the clock matters.
  await request(U, 'POST', '/v1/chat/completions', { model: MODEL, max_tokens: 1, messages: [{ role: 'user', content: 'x' }] });
  // The workers open their database handles as they start: wait (up to 15 s)
  // until the fd count holds still for a second (slow under sanitizers).
  let idleBefore = procStats(srv.pid);
  for (let i = 0; i < 15; i++) {
    await new Promise((r) => setTimeout(r, 1000));
    const now = procStats(srv.pid);
    if (now.fds === idleBefore.fds) break;
    idleBefore = now;
  }
  samples.push({ t: 0, ...idleBefore });
  await Promise.all(Array.from({ length: CLIENTS }, (_, c) => client(c)));
  clearInterval(sampler);
  await new Promise((r) => setTimeout(r, 500));
  const idleAfter = procStats(srv.pid);
  const elapsed = (Date.now() - t0) / 1000;

  const warm = samples.filter((s) => s.t >= SECONDS * 500);
  const rss = warm.map((s) => s.rssKb);
  const fds = warm.map((s) => s.fds);
  const bad5xx = [...codes].filter(([k]) => Number(k.split(' ')[0]) >= 500 && !BACKPRESSURE.has(k)).reduce((a, [, n]) => a + n, 0);
  const undocumented = [...codes].filter(([k]) => !BACKPRESSURE.has(k)).reduce((a, [, n]) => a + n, 0);
  const total = [...statuses.values()].reduce((a, b) => a + b, 0);
  console.log(`load: ${CLIENTS} clients x ${elapsed.toFixed(0)} s, ${total} requests (${(total / elapsed).toFixed(1)}/s), ` +
    `statuses ${JSON.stringify(Object.fromEntries(statuses))}, ${streamsOk} streams complete, ${streamsTruncated} truncated, ${errors} client errors`);
  console.log(`load: ${tokens} content chunks (${(tokens / elapsed).toFixed(0)}/s); TTFT p50 ${pct(ttfts, 50)} ms, p90 ${pct(ttfts, 90)} ms, p99 ${pct(ttfts, 99)} ms`);
  console.log(`load: RSS after warm-up ${Math.min(...rss)}..${Math.max(...rss)} KiB (first ${rss[0]}, last ${rss[rss.length - 1]}); ` +
    `fds ${Math.min(...fds)}..${Math.max(...fds)}, idle ${idleBefore.fds} before and ${idleAfter.fds} after (RSS ${idleAfter.rssKb} KiB); samples ${samples.map((s) => `${Math.round(s.t / 1000)}s:${s.rssKb}/${s.fds}`).join(' ')}`);
  const warmAt = warm.length ? Math.round(warm[0].t / 1000) : 0;
  const last = warm[warm.length - 1] || {};
  console.log(`load: non-200 answers by status and code ${JSON.stringify(Object.fromEntries(codes))}; ` +
    `5xx other than the documented 429/503: ${bad5xx}`);
  console.log(`load: after warm-up (${warmAt} s) RSS ${rss[0]} KiB, fds ${fds[0]}; at the end ` +
    `(${Math.round((last.t || 0) / 1000)} s) RSS ${last.rssKb} KiB (${last.rssKb - rss[0] >= 0 ? '+' : ''}${last.rssKb - rss[0]}), fds ${last.fds}`);
  check('no 5xx other than documented back-pressure (503 queue_timeout/too_many_models)', bad5xx === 0, Object.fromEntries(codes));
  check('no 4xx other than 429 queue_full', undocumented === bad5xx, Object.fromEntries(codes));
  check('no client-side errors or truncated streams', errors === 0 && streamsTruncated === 0, { errors, streamsTruncated });
  check('most requests completed', streamsOk > 0 && streamsOk >= total * 0.9, { streamsOk, total });
  check(`RSS flat after warm-up (growth < ${RSS_SLACK_KB} KiB)`, rss.length >= 2 && rss[rss.length - 1] - rss[0] < RSS_SLACK_KB, rss);
  // Connections come and go with requests: flat means the peak does not climb.
  const half = Math.floor(fds.length / 2);
  check('open fds flat after warm-up (the peak grows by at most 4)', fds.length >= 2 &&
    Math.max(...fds.slice(half)) - Math.max(...fds.slice(0, half || 1)) <= 4, fds);
  check('idle again, the daemon holds the fds it held before the load', idleAfter.fds <= idleBefore.fds + 2, [idleBefore.fds, idleAfter.fds]);
  const m = await fetch(`${U}/metrics`).then((r) => r.text());
  const line = m.split('\n').find((l) => l.startsWith(`mlxm_completion_tokens_total{model="${MODEL}"}`));
  console.log(`load: daemon counted ${line ? line.split(' ')[1] : '?'} completion tokens`);
  const log = fs.readFileSync(path.join(srv.runDir, 'daemon.log'), 'utf8');
  // BUILD=build-sanitize (ASan/UBSan) or build-tsan (ThreadSanitizer) daemons report here.
  const bad = /ERROR: \w+Sanitizer|WARNING: ThreadSanitizer|SUMMARY: \w+Sanitizer|runtime error:|"level":"error"/;
  check('no sanitizer reports or errors in the daemon log', !bad.test(log), log.split('\n').filter((l) => bad.test(l)).slice(0, 10));
} catch (e) {
  check('no exception', false, e.stack);
} finally {
  clearInterval(sampler);
  srv.cleanup();
  finish();
}
