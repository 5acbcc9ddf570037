// bench_serving.mjs - serving benchmark through nginx + daemon: aggregate
// decode throughput with 1, 2, 4, 8, 16 concurrent streaming chat clients
// (total: tokens after each client's first over the span from the first
// client's first token to the last one's last, the prefill of clients that
// joined a step later included; all decoding: only while every client
// decodes), TTFT of a ~3,000-token system prompt cold vs from the prefix cache, and
// KV waste with 16 sequences of mixed lengths decoding at once (min /
// median / max of samples taken while all 16 decode).  Random-weight MLX 4-bit
// models from `mlx-manager mkmodel`: the 110M Llama shape (hidden 768, 12
// layers, 12 heads, FFN 2048, vocab 32000), plus the Qwen2.5-0.5B and
// Llama-3.2-1B shapes with --full.  Prints numbers; never fails on speed.
//
//   node tests/bench/bench_serving.mjs [--quick|--full] [--tokens N] [--repeat N]
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { startServer, request, runBin } from '../integration/lib.mjs';

const args = process.argv.slice(2);
const full = args.includes('--full');
const quick = args.includes('--quick');
const tokIdx = args.indexOf('--tokens');
const TOKENS = tokIdx >= 0 ? Number(args[tokIdx + 1]) : quick ? 24 : 64;
// each client count runs REPEAT times and the best run is printed: the
// numbers are for a shared machine, where a slow run is someone else's load
// (the paired ratio, per repeat, is printed too)
const repIdx = args.indexOf('--repeat');
const REPEAT = repIdx >= 0 ? Number(args[repIdx + 1]) : 3;
const CLIENTS = quick ? [1, 2, 4, 8] : [1, 2, 4, 8, 16];

const SHAPES = [
  { name: 'llama-110M', args: ['--arch', 'llama', '--hidden', '768', '--layers', '12', '--heads', '12', '--ffn', '2048', '--vocab', '32000'] },
];
if (full) {
  SHAPES.push({ name: 'qwen2.5-0.5B', args: ['--arch', 'qwen2', '--preset', 'qwen2.5-0.5b'] });
  SHAPES.push({ name: 'llama-3.2-1B', args: ['--arch', 'llama', '--preset', 'llama-3.2-1b'] });
}

const now = () => performance.now() / 1000;

// One streaming chat; returns token arrival times (one SSE chunk with
// text = one token; a token whose text is held back is not seen) and the
// final usage.  An aborted signal ends it with an AbortError.
async function streamChat(base, body, signal) {
  const t0 = now();
  const res = await fetch(`${base}/v1/chat/completions`, {
    method: 'POST', headers: { 'content-type': 'application/json' }, signal,
    body: JSON.stringify({ ...body, stream: true, stream_options: { include_usage: true } }),
  });
  if (res.status !== 200) throw new Error(`HTTP ${res.status}: ${await res.text()}`);
  const times = [];
  let usage = null;
  let buf = '';
  const dec = new TextDecoder();
  for await (const part of res.body) {
    buf += dec.decode(part, { stream: true });
    let i;
    while ((i = buf.indexOf('\n\n')) >= 0) {
      const ev = buf.slice(0, i);
      buf = buf.slice(i + 2);
      if (!ev.startsWith('data: ') || ev === 'data: [DONE]') continue;
      const j = JSON.parse(ev.slice(6));
      if (j.usage) usage = j.usage;
      // a token = a chunk with text (the first chunk, the role, has none)
      if (j.choices && j.choices.length && j.choices[0].delta && j.choices[0].delta.content) times.push(now());
    }
  }
  return { t0, times, usage };
}

function words(n, seed) {
  const w = ['alpha', 'river', 'stone', 'cloud', 'maple', 'ember', 'quartz', 'harbor', 'violet', 'signal', 'copper', 'meadow'];
  let s = seed;
  const out = [];
  for (let i = 0; i < n; i++) {
    s = (s * 1103515245 + 12345) % 2147483648;
    out.push(w[s % w.length]);
  }
  return out.join(' ');
}

const median = (a) => { const s = [...a].sort((x, y) => x - y); return s.length ? s[Math.floor(s.length / 2)] : 0; };
const p = (x, d = 1) => x.toFixed(d);

async function benchShape(shape) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'mlxm-bench-'));
  const model = path.join(dir, shape.name);
  const mk = runBin(['mkmodel', ...shape.args, '--dtype', 'mlx-4bit', '--out', model]);
  if (mk.status !== 0) throw new Error(`mkmodel: ${mk.stderr}`);
  const srv = await startServer('workers: 24\n');
  try {
    const U = srv.url;
    const load = await request(U, 'POST', '/admin/models/load', { model });
    if (load.status !== 200) throw new Error(`load: ${load.text}`);
    console.log(`\n## ${shape.name} (MLX 4-bit, ${TOKENS} tokens per client)`);
    // warm-up: pages in weights, first-call costs
    await streamChat(U, { model, max_tokens: 4, ignore_eos: true, messages: [{ role: 'user', content: 'warm up' }] });
    console.log('clients  total tok/s  all-decoding tok/s  per-client tok/s  median ITL ms  p90 ITL ms  wall s');
    // One round of n streaming clients.
    const measure = async (n) => {
      const t0 = now();
      const runs = await Promise.all([...Array(n).keys()].map((i) => streamChat(U, {
        model, max_tokens: TOKENS, ignore_eos: true, temperature: 0.8, seed: i,
        messages: [{ role: 'user', content: `Client ${i}: ${words(8, i + 1)}` }],
      })));
      const wall = now() - t0;
      // decode throughput: tokens after each client's first, over the span
      // in which they arrived
      const firsts = runs.map((r) => r.times[0]);
      const lasts = runs.map((r) => r.times[r.times.length - 1]);
      const decTokens = runs.reduce((a, r) => a + r.times.length - 1, 0);
      const total = decTokens / (Math.max(...lasts) - Math.min(...firsts));
      // the same while every client decodes: from the last first token to
      // the first last one, without the ramp (later clients' prompts
      // prefilled beside the first ones' decodes) and the tail (fewer left)
      const from = Math.max(...firsts), to = Math.min(...lasts);
      const inWindow = runs.reduce((a, r) => a + r.times.filter((t) => t > from && t <= to).length, 0);
      const steady = to > from ? inWindow / (to - from) : 0;
      return { total, steady, wall, runs };
    };
    // Each repeat runs every client count once, back to back: the machine's
    // speed drifts over minutes, so a ratio is also taken within each repeat
    // ("paired": the median over repeats of n clients' total over one
    // client's), beside the ratio of the best runs.
    const rounds = new Map(CLIENTS.map((n) => [n, []]));
    for (let rep = 0; rep < REPEAT; rep++)
      for (const n of CLIENTS) rounds.get(n).push(await measure(n));
    const bestOf = (n) => rounds.get(n).reduce((a, b) => (b.total > a.total ? b : a));
    const single = bestOf(1);
    for (const n of CLIENTS) {
      const { total, steady, wall, runs } = bestOf(n);
      const gaps = runs.flatMap((r) => r.times.slice(1).map((t, k) => (t - r.times[k]) * 1000));
      const sorted = [...gaps].sort((a, b) => a - b);
      const paired = median(rounds.get(n).map((r, k) => r.total / rounds.get(1)[k].total));
      console.log(`${String(n).padStart(7)}  ${p(total).padStart(11)}  ${p(steady).padStart(18)}  ${p(total / n).padStart(16)}  ${p(median(gaps)).padStart(13)}  ${p(sorted[Math.floor(sorted.length * 0.9)] || 0).padStart(10)}  ${p(wall, 2).padStart(6)}` +
        (n > 1 ? `   (${p(total / single.total, 2)}x single; paired ${p(paired, 2)}x; all decoding ${p(steady / single.steady, 2)}x)` : ''));
    }

    // KV waste: 16 sequences of mixed lengths (prompts of ~30 to ~1,500
    // tokens), sampled every 100 ms while all 16 decode: running 16, none
    // waiting, none still prefilling (a prompt goes in 64 tokens a step
    // beside the decodes, so the short ones decode for ~200 steps before the
    // longest is in).  max_tokens leaves room for that whatever the speed;
    // once WASTE_SAMPLES samples are in, the streams are cancelled.
    const WASTE_SAMPLES = 20;
    const wasteSeen = [];
    let most = { running: 0, prefilling: 0 };
    const statusOf = async () => (await request(U, 'GET', '/admin/models/status')).json.models.find((x) => x.dir === model || x.name === model);
    const stopStreams = new AbortController();
    const poll = setInterval(async () => {
      try {
        const s = await statusOf();
        const sc = s && s.scheduler;
        if (!sc || stopStreams.signal.aborted) return;
        if (sc.running > most.running) most = { running: sc.running, prefilling: sc.prefilling };
        if (sc.running === 16 && sc.waiting === 0 && sc.prefilling === 0) {
          wasteSeen.push({ waste: sc.kv_waste_percent, used: sc.kv_blocks_used, shared: sc.kv_blocks_shared });
          if (wasteSeen.length >= WASTE_SAMPLES) stopStreams.abort();
        }
      } catch { /* a poll racing the end */ }
    }, 100);
    const mixed = await Promise.allSettled([...Array(16).keys()].map((i) => streamChat(U, {
      model, max_tokens: 400 + 8 * i, ignore_eos: true, temperature: 0.8, seed: i,
      messages: [{ role: 'user', content: `Sequence ${i}: ${words(10 + 31 * i, i + 5)}` }],
    }, stopStreams.signal)));
    clearInterval(poll);
    const failed = mixed.filter((r) => r.status === 'rejected' && !stopStreams.signal.aborted);
    if (failed.length) throw failed[0].reason;
    if (wasteSeen.length) {
      const w = wasteSeen.map((x) => x.waste).sort((a, b) => a - b);
      const mid = wasteSeen.find((x) => x.waste === median(w));
      console.log(`KV waste with 16 mixed-length sequences decoding: min ${p(w[0], 2)}  median ${p(median(w), 2)}  ` +
        `max ${p(w[w.length - 1], 2)} % of the slots of used blocks (${w.length} samples, 100 ms apart; ` +
        `median sample: ${mid.used} blocks used, ${mid.shared} shared)`);
    } else {
      console.log(`KV waste with 16 mixed-length sequences decoding: NO SAMPLE - the 16 never decoded at once ` +
        `(at most ${most.running} running, ${most.prefilling} of them prefilling)`);
    }

    // prefix cache: a ~3,000-token system prompt sent once, then again
    // with a different user message
    const sysText = words(1000, 99); // ~3,000 tokens with the synthetic tokenizer
    const ask = (q) => streamChat(U, {
      model, max_tokens: 2, temperature: 0, messages: [{ role: 'system', content: sysText }, { role: 'user', content: q }],
    });
    const cold = await ask('First question about the text?');
    const ttft = (r) => (r.times[0] - r.t0) * 1000;
    // warm: REPEAT other questions after the same system prompt (each
    // different from its first word, so none reuses another's blocks), the best
    const questions = ['A different question entirely.', 'Why is the sky blue?', 'Name three rivers.',
      'How do magnets work?', 'Summarize it briefly.'];
    const warms = [];
    for (let i = 0; i < REPEAT; i++) warms.push(await ask(`${questions[i % questions.length]} (${i})`));
    const warm = warms.reduce((a, b) => (ttft(b) < ttft(a) ? b : a));
    console.log(`prefix cache: system prompt ${cold.usage.prompt_tokens} tokens; TTFT cold ${p(ttft(cold))} ms, ` +
      `warm ${p(ttft(warm))} ms (best of ${REPEAT}: ${warms.map((w) => p(ttft(w))).join(' ')}; cached_tokens ` +
      `${warm.usage.prompt_tokens_details.cached_tokens} of ${warm.usage.prompt_tokens})`);
    const st = await statusOf();
    console.log(`scheduler: ${JSON.stringify(st.scheduler)}`);
  } finally {
    srv.cleanup();
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

for (const s of SHAPES) await benchShape(s);
