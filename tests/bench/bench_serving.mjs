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
import { clientsTable, fmt as p, median, prefixTtft, streamChat, words } from './serving_clients.mjs';

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
    await clientsTable(U, model, CLIENTS, TOKENS, REPEAT);

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

    await prefixTtft(U, model, REPEAT);
    const st = await statusOf();
    console.log(`scheduler: ${JSON.stringify(st.scheduler)}`);
  } finally {
    srv.cleanup();
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

for (const s of SHAPES) await benchShape(s);
