// test_batching.mjs - many users at once through nginx + daemon: concurrent
// streaming chats give the text each gives alone, a shared system prompt
// is served from the prefix cache (usage.prompt_tokens_details.cached_tokens
// and Anthropic's cache_read_input_tokens), and the scheduler's stats in
// /admin/models/status and /api/servers return to an empty KV pool.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { createRequire } from 'node:module';
import { check, finish, startServer, request, runBin, sanitizerReports, waitFor, REPO } from './lib.mjs';

const require = createRequire(path.join(REPO, 'tests/package.json'));
const OpenAIMod = require('openai');
const OpenAI = OpenAIMod.default || OpenAIMod;

const TEMPLATE = `{%- for message in messages %}<|im_start|>{{ message.role }}
{{ message.content }}<|im_end|>
{% endfor %}
{%- if add_generation_prompt %}<|im_start|>assistant
{% endif %}`;

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'mlxm-batching-'));
const MODEL = path.join(tmp, 'qwen3');
let srv = null;

try {
  const mk = runBin(['mkmodel', '--arch', 'qwen3', '--preset', 'tiny', '--dtype', 'f32', '--out', MODEL]);
  if (mk.status !== 0) throw new Error(`mkmodel failed: ${mk.stderr}`);
  fs.writeFileSync(path.join(MODEL, 'chat_template.jinja'), TEMPLATE);

  srv = await startServer('workers: 12\n');
  const U = srv.url;
  const client = new OpenAI({ baseURL: `${U}/v1`, apiKey: 'unused', maxRetries: 0 });
  const body = (i) => ({
    model: MODEL, seed: 7 + i, temperature: i % 2 ? 1 : 0, max_tokens: 16 + i, ignore_eos: true,
    messages: [{ role: 'user', content: `Request number ${i}: ${'tell me more '.repeat(i + 1)}` }],
  });

  // ---- 8 streaming clients at once = each alone --------------------------------------
  const alone = [];
  for (let i = 0; i < 8; i++) alone.push((await client.chat.completions.create(body(i))).choices[0].message.content);
  const streamed = await Promise.all([...Array(8).keys()].map(async (i) => {
    const s = await client.chat.completions.create({ ...body(i), stream: true });
    let text = '';
    for await (const c of s) if (c.choices.length) text += c.choices[0].delta.content || '';
    return text;
  }));
  check('8 concurrent streams = the same 8 run one by one', streamed.every((t, i) => t === alone[i]),
    { alone, streamed });

  // ---- prefix cache ----------------------------------------------------------------
  const system = 'You are a careful assistant. '.repeat(40);
  const ask = (q, extra = {}) => client.chat.completions.create({
    model: MODEL, seed: 1, temperature: 0, max_tokens: 8,
    messages: [{ role: 'system', content: system }, { role: 'user', content: q }], ...extra,
  });
  const first = await ask('What is a cache?');
  const second = await ask('Why is the sky blue?');
  const again = await ask('Why is the sky blue?');
  const c2 = second.usage.prompt_tokens_details.cached_tokens;
  check('a shared system prompt is served from the prefix cache', c2 >= 64 && c2 < second.usage.prompt_tokens,
    { first: first.usage, second: second.usage });
  // down to the token: every prompt token but the last (always computed,
  // its logits pick the first output), the tail from the block the earlier
  // run published with its output in it
  check('a repeated prompt: all but its last token cached, same text',
    again.usage.prompt_tokens_details.cached_tokens === again.usage.prompt_tokens - 1 &&
    again.choices[0].message.content === second.choices[0].message.content, again.usage);
  const am = await request(U, 'POST', '/v1/messages', {
    model: MODEL, max_tokens: 4, system, messages: [{ role: 'user', content: 'Another question' }],
  }, { 'anthropic-version': '2023-06-01' });
  check('Anthropic: cache_read_input_tokens', am.status === 200 && am.json.usage.cache_read_input_tokens >= 64 &&
    am.json.usage.cache_read_input_tokens < am.json.usage.input_tokens, am.json && am.json.usage);

  // ---- stats ---------------------------------------------------------------------
  const idle = await waitFor(async () => {
    const s = await request(U, 'GET', '/admin/models/status');
    const m = s.json && s.json.models && s.json.models.find((x) => x.name === MODEL);
    return m && m.scheduler && m.scheduler.kv_blocks_used === 0 && m.scheduler.running === 0;
  }, 3000, 50);
  const st = (await request(U, 'GET', '/admin/models/status')).json.models.find((x) => x.name === MODEL);
  check('scheduler stats: pool empty again, blocks cached, hits counted', idle && st.scheduler.kv_blocks_cached > 0 &&
    st.scheduler.prefix_hit_ratio > 0 && st.scheduler.cached_prompt_tokens >= c2 &&
    st.kv_blocks_free === st.kv_blocks_total && st.scheduler.waiting === 0 &&
    st.scheduler.prefilling === 0 && st.scheduler.kv_waste_percent === 0, st.scheduler);
  const servers = await request(U, 'GET', '/api/servers');
  check('/api/servers shows the scheduler stats', servers.status === 200 &&
    JSON.stringify(servers.json).includes('"prefix_hit_ratio"'), servers.text.slice(0, 300));

  srv.stop();
  const reports = sanitizerReports(srv.runDir);
  check('no sanitizer reports', reports.length === 0, reports.slice(0, 5));
} catch (e) {
  check('test ran without exceptions', false, e.stack || String(e));
} finally {
  if (srv) srv.cleanup();
  fs.rmSync(tmp, { recursive: true, force: true });
}
finish();
