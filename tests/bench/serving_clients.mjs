// serving_clients.mjs - the client side of the serving benchmarks, for any
// OpenAI-compatible server (ours through nginx in bench_serving.mjs,
// llama.cpp's llama-server in reference/bench_reference.mjs): streaming
// chats, the n-clients throughput table and the prefix-cache TTFT.

const now = () => performance.now() / 1000;

// One streaming chat; returns token arrival times (one SSE chunk with
// text = one token; a token whose text is held back is not seen) and the
// final usage.  An aborted signal ends it with an AbortError.
export async function streamChat(base, body, signal) {
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

// n pseudo-random words from a fixed list (the same for a seed)
export function words(n, seed) {
  const w = ['alpha', 'river', 'stone', 'cloud', 'maple', 'ember', 'quartz', 'harbor', 'violet', 'signal', 'copper', 'meadow'];
  let s = seed;
  const out = [];
  for (let i = 0; i < n; i++) {
    s = (s * 1103515245 + 12345) % 2147483648;
    out.push(w[s % w.length]);
  }
  return out.join(' ');
}

export const median = (a) => { const s = [...a].sort((x, y) => x - y); return s.length ? s[Math.floor(s.length / 2)] : 0; };
export const fmt = (x, d = 1) => x.toFixed(d);

// One round of n streaming clients of `tokens` tokens each.
async function measure(base, model, n, tokens) {
  const t0 = now();
  const runs = await Promise.all([...Array(n).keys()].map((i) => streamChat(base, {
    model, max_tokens: tokens, ignore_eos: true, temperature: 0.8, seed: i,
    messages: [{ role: 'user', content: `Client ${i}: ${words(8, i + 1)}` }],
  })));
  const wall = now() - t0;
  // decode throughput: tokens after each client's first, over the span in
  // which they arrived
  const firsts = runs.map((r) => r.times[0]);
  const lasts = runs.map((r) => r.times[r.times.length - 1]);
  const decTokens = runs.reduce((a, r) => a + r.times.length - 1, 0);
  const total = decTokens / (Math.max(...lasts) - Math.min(...firsts));
  // the same while every client decodes: from the last first token to the
  // first last one, without the ramp (later clients' prompts prefilled
  // beside the first ones' decodes) and the tail (fewer left)
  const from = Math.max(...firsts), to = Math.min(...lasts);
  const inWindow = runs.reduce((a, r) => a + r.times.filter((t) => t > from && t <= to).length, 0);
  const steady = to > from ? inWindow / (to - from) : 0;
  return { total, steady, wall, runs };
}

// After a warm-up request, the throughput table for each client count (1
// first), best of `repeat`;
// returns {clients: {n: {total, per_client, paired}}}.  Each repeat runs
// every client count once, back to back: the machine's speed drifts over
// minutes, so a ratio is also taken within each repeat ("paired": the median
// over repeats of n clients' total over one client's), beside the ratio of
// the best runs.
export async function clientsTable(base, model, clients, tokens, repeat) {
  // warm-up: pages in weights, first-call costs
  await streamChat(base, { model, max_tokens: 4, ignore_eos: true, messages: [{ role: 'user', content: 'warm up' }] });
  console.log('clients  total tok/s  all-decoding tok/s  per-client tok/s  median ITL ms  p90 ITL ms  wall s');
  const rounds = new Map(clients.map((n) => [n, []]));
  for (let rep = 0; rep < repeat; rep++)
    for (const n of clients) rounds.get(n).push(await measure(base, model, n, tokens));
  const bestOf = (n) => rounds.get(n).reduce((a, b) => (b.total > a.total ? b : a));
  const single = bestOf(1);
  const result = {};
  for (const n of clients) {
    const { total, steady, wall, runs } = bestOf(n);
    const gaps = runs.flatMap((r) => r.times.slice(1).map((t, k) => (t - r.times[k]) * 1000));
    const sorted = [...gaps].sort((a, b) => a - b);
    const paired = median(rounds.get(n).map((r, k) => r.total / rounds.get(1)[k].total));
    console.log(`${String(n).padStart(7)}  ${fmt(total).padStart(11)}  ${fmt(steady).padStart(18)}  ${fmt(total / n).padStart(16)}  ${fmt(median(gaps)).padStart(13)}  ${fmt(sorted[Math.floor(sorted.length * 0.9)] || 0).padStart(10)}  ${fmt(wall, 2).padStart(6)}` +
      (n > 1 ? `   (${fmt(total / single.total, 2)}x single; paired ${fmt(paired, 2)}x; all decoding ${fmt(steady / single.steady, 2)}x)` : ''));
    result[n] = { total, per_client: total / n, paired };
  }
  return result;
}

// Prefix cache: a ~3,000-token system prompt (with our synthetic tokenizer)
// sent once, then `repeat` times more with a different user message each
// (different from its first word, so none reuses another's blocks).
// Prints and returns the TTFTs in ms and the prompt's length.
export async function prefixTtft(base, model, repeat) {
  const sysText = words(1000, 99);
  const ask = (q) => streamChat(base, {
    model, max_tokens: 2, temperature: 0, messages: [{ role: 'system', content: sysText }, { role: 'user', content: q }],
  });
  const ttft = (r) => (r.times[0] - r.t0) * 1000;
  const cold = await ask('First question about the text?');
  const questions = ['A different question entirely.', 'Why is the sky blue?', 'Name three rivers.',
    'How do magnets work?', 'Summarize it briefly.'];
  const warms = [];
  for (let i = 0; i < repeat; i++) warms.push(await ask(`${questions[i % questions.length]} (${i})`));
  const warm = warms.reduce((a, b) => (ttft(b) < ttft(a) ? b : a));
  const cached = warm.usage?.prompt_tokens_details?.cached_tokens;
  console.log(`prefix cache: system prompt ${cold.usage?.prompt_tokens ?? '?'} tokens; TTFT cold ${fmt(ttft(cold))} ms, ` +
    `warm ${fmt(ttft(warm))} ms (best of ${repeat}: ${warms.map((w) => fmt(ttft(w))).join(' ')}; cached_tokens ` +
    `${cached ?? 'not reported'} of ${warm.usage?.prompt_tokens ?? '?'})`);
  return { prompt_tokens: cold.usage?.prompt_tokens, cold_ms: ttft(cold), warm_ms: ttft(warm) };
}
