// test_ops.mjs - operations through the real nginx + daemon: /metrics in the
// Prometheus text format (checked by promtool) with request, token, TTFT and
// inter-token figures after a streamed generation, the request log line with
// model and tokens, one request_log row per inference request, and the log
// ring: GET /api/logs with filters and the live SSE feed /api/logs/stream.
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { check, finish, startServer, request, sanitizerReports } from './lib.mjs';

const MODEL = 'random-demo-NOT-A-REAL-MODEL';

function promtool() {
  for (const p of ['/usr/bin/promtool', '/usr/local/bin/promtool']) if (fs.existsSync(p)) return p;
  return null;
}

// Value of the series `name{labels}` exactly as written, or undefined.
function sample(text, series) {
  for (const line of text.split('\n')) {
    if (line.startsWith(series + ' ')) return Number(line.slice(series.length + 1));
  }
  return undefined;
}

// Reads SSE events from a fetch response until pred(event) or the deadline.
async function readEvents(res, pred, ms) {
  const reader = res.body.getReader();
  const dec = new TextDecoder();
  let buf = '';
  const events = [];
  const end = Date.now() + ms;
  while (Date.now() < end) {
    const r = await Promise.race([reader.read(), new Promise((ok) => setTimeout(() => ok(null), end - Date.now()))]);
    if (!r || r.done) break;
    buf += dec.decode(r.value, { stream: true });
    let i;
    while ((i = buf.indexOf('\n\n')) >= 0) {
      const block = buf.slice(0, i);
      buf = buf.slice(i + 2);
      const ev = { event: null, data: null };
      for (const l of block.split('\n')) {
        if (l.startsWith('event: ')) ev.event = l.slice(7);
        else if (l.startsWith('data: ')) ev.data = l.slice(6);
      }
      if (ev.data !== null) events.push(ev);
      if (ev.data !== null && pred(ev)) {
        await reader.cancel();
        return events;
      }
    }
  }
  await reader.cancel().catch(() => {});
  return events;
}

const srv = await startServer('');
const U = srv.url;
try {
  const tool = promtool();
  check('promtool is installed (tools/setup.sh installs prometheus)', tool !== null);

  // A streamed generation and a non-streamed one.
  const stream = await fetch(`${U}/v1/chat/completions`, {
    method: 'POST', headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ model: MODEL, stream: true, max_tokens: 8, ignore_eos: true, seed: 1,
      messages: [{ role: 'user', content: 'hello' }] }),
  });
  const streamText = await stream.text();
  check('streamed chat completion answers 200', stream.status === 200 && streamText.includes('[DONE]'), streamText.slice(0, 300));
  const plain = await request(U, 'POST', '/v1/completions', { model: MODEL, prompt: 'abc', max_tokens: 4, ignore_eos: true });
  check('completion answers 200', plain.status === 200, plain.text.slice(0, 300));
  const bad = await request(U, 'POST', '/v1/chat/completions', { model: 'no-such-model', messages: [{ role: 'user', content: 'x' }] });
  check('unknown model answers 404', bad.status === 404, bad.status);

  const m = await fetch(`${U}/metrics`);
  const text = await m.text();
  check('/metrics answers 200 in the text format', m.status === 200 && (m.headers.get('content-type') || '').startsWith('text/plain; version=0.0.4'), m.headers.get('content-type'));
  if (tool) {
    const r = spawnSync(tool, ['check', 'metrics'], { input: text, encoding: 'utf8', timeout: 30000 });
    check('promtool check metrics accepts the exposition', r.status === 0, r.stdout + r.stderr);
  }
  check('requests counted by route pattern and status',
    sample(text, 'mlxm_http_requests_total{method="POST",endpoint="/v1/chat/completions",status="200"}') === 1 &&
    sample(text, 'mlxm_http_requests_total{method="POST",endpoint="/v1/chat/completions",status="404"}') === 1, text.slice(0, 2000));
  check('completion tokens counted per model (8 + 4)', sample(text, `mlxm_completion_tokens_total{model="${MODEL}"}`) === 12);
  check('prompt tokens counted per model', sample(text, `mlxm_prompt_tokens_total{model="${MODEL}"}`) > 0);
  check('generations counted', sample(text, `mlxm_generations_total{model="${MODEL}"}`) === 2);
  check('TTFT histogram has both generations', sample(text, `mlxm_time_to_first_token_seconds_count{model="${MODEL}"}`) === 2 &&
    sample(text, `mlxm_time_to_first_token_seconds_bucket{model="${MODEL}",le="+Inf"}`) === 2);
  check('inter-token latency histogram has the gaps (7 + 3)', sample(text, 'mlxm_inter_token_latency_seconds_count') === 10);
  check('loaded model memory and KV blocks exported',
    sample(text, `mlxm_model_memory_bytes{model="${MODEL}"}`) > 0 &&
    sample(text, `mlxm_kv_blocks{model="${MODEL}",state="clean"}`) > 0 &&
    sample(text, `mlxm_kv_blocks{model="${MODEL}",state="used"}`) === 0 &&
    sample(text, `mlxm_queue_depth{model="${MODEL}"}`) === 0 &&
    sample(text, `mlxm_running_sequences{model="${MODEL}"}`) === 0);
  const ratio = sample(text, `mlxm_prefix_cache_hit_ratio{model="${MODEL}"}`);
  check('prefix cache hit ratio and cached tokens exported', ratio >= 0 && ratio <= 1 &&
    sample(text, `mlxm_prefix_cached_tokens{model="${MODEL}"}`) >= 0 && sample(text, `mlxm_kv_blocks{model="${MODEL}",state="cached"}`) >= 0);
  check('download gauges exported', sample(text, 'mlxm_downloads{state="downloading"}') === 0);

  // The log line of the streamed request carries model and tokens.
  const log = fs.readFileSync(path.join(srv.runDir, 'daemon.log'), 'utf8').split('\n')
    .filter((l) => l.startsWith('{')).map((l) => JSON.parse(l));
  const chatLine = log.find((l) => l.msg === 'request' && l.path === '/v1/chat/completions' && l.status === 200);
  check('request line has id, method, path, status, duration, model and tokens',
    chatLine && /^[0-9a-f]{16,32}$/.test(chatLine.request_id) && chatLine.method === 'POST' &&
    chatLine.duration_ms > 0 && chatLine.model === MODEL && chatLine.completion_tokens === 8 &&
    chatLine.prompt_tokens > 0 && chatLine.ttft_ms > 0, chatLine);
  const healthLine = log.find((l) => l.msg === 'request' && l.path === '/api/health');
  check('non-inference lines carry no model', healthLine && !('model' in healthLine), healthLine);

  // One request_log row per inference request (the 404 included, without usage).
  const rows = await request(U, 'GET', '/api/logs/requests?limit=10');
  const data = rows.json && rows.json.data;
  check('request_log has the three inference requests', rows.status === 200 && data.length === 3, rows.text.slice(0, 500));
  if (data && data.length === 3) {
    const chat = data.find((r) => r.path === '/v1/chat/completions' && r.status === 200);
    check('request_log row: model, tokens, TTFT, tokens/s', chat && chat.model === MODEL && chat.completion_tokens === 8 &&
      chat.prompt_tokens > 0 && chat.ttft_ms > 0 && chat.tokens_per_second > 0 && chat.request_id === chatLine.request_id, chat);
    const nf = data.find((r) => r.status === 404);
    check('request_log row of the failed request has no usage', nf && nf.model === 'no-such-model' && nf.completion_tokens === null, nf);
  }
  check('request_log limit is validated', (await request(U, 'GET', '/api/logs/requests?limit=0')).status === 422);

  // The log ring with filters.
  const recent = await request(U, 'GET', '/api/logs?msg=request&path=/v1/');
  const lines = recent.json && recent.json.data;
  check('/api/logs filters by msg and path prefix', recent.status === 200 && lines.length === 3 &&
    lines.every((l) => l.path.startsWith('/v1/') && typeof l.seq === 'number'), recent.text.slice(0, 500));
  const failedOnly = await request(U, 'GET', '/api/logs?msg=request&path=/v1/&status=400');
  check('/api/logs filters by minimum status', failedOnly.status === 200 && failedOnly.json.data.length === 1 &&
    failedOnly.json.data[0].status === 404, failedOnly.text.slice(0, 500));
  const byModel = await request(U, 'GET', `/api/logs?model=${MODEL}&limit=1`);
  check('/api/logs limit keeps the newest', byModel.status === 200 && byModel.json.data.length === 1 &&
    byModel.json.data[0].path === '/v1/completions', byModel.text.slice(0, 300));
  check('/api/logs rejects a bad level', (await request(U, 'GET', '/api/logs?level=loud')).status === 422);
  check('/api/logs rejects a bad status', (await request(U, 'GET', '/api/logs?status=abc')).status === 422);

  // The live feed: a line written after the stream opened arrives, filtered.
  const ctrl = new AbortController();
  const live = await fetch(`${U}/api/logs/stream?msg=request&path=/api/system`, { signal: ctrl.signal });
  check('/api/logs/stream is an event stream', live.status === 200 && (live.headers.get('content-type') || '').startsWith('text/event-stream'));
  const pending = readEvents(live, (ev) => ev.event === 'log' && JSON.parse(ev.data).path === '/api/system/info', 10000);
  await new Promise((r) => setTimeout(r, 200));
  await request(U, 'GET', '/api/health');
  await request(U, 'GET', '/api/system/info');
  const evs = await pending;
  const got = evs.map((e) => JSON.parse(e.data));
  check('the live feed delivers the new line and leaves out the filtered ones',
    got.length === 1 && got[0].path === '/api/system/info' && got[0].status === 200, got);
  ctrl.abort();

  // Request ids are unique per request.
  const ids = new Set(log.filter((l) => l.msg === 'request').map((l) => l.request_id));
  check('request ids are unique', ids.size === log.filter((l) => l.msg === 'request').length);
} catch (e) {
  check('no exception', false, e.stack);
} finally {
  srv.stop();
  check('no sanitizer reports', sanitizerReports(srv.runDir).length === 0, sanitizerReports(srv.runDir).slice(0, 5));
  fs.rmSync(srv.runDir, { recursive: true, force: true });
  finish();
}
