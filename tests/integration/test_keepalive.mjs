// test_keepalive.mjs - SSE keep-alives while a long prompt is prefilled: the daemon runs with
// MLXM_SSE_KEEPALIVE_MS=1, so any wait for the first token sends ": keep-alive" comments on
// the OpenAI endpoints and `event: ping` on Anthropic's.  The raw bytes must show one before
// the first generated text, and the same stream must still read cleanly through the real
// OpenAI and Anthropic SDKs.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { createRequire } from 'node:module';
import { check, finish, startServer, runBin, REPO } from './lib.mjs';

const require = createRequire(path.join(REPO, 'tests/package.json'));
const OpenAIMod = require('openai');
const OpenAI = OpenAIMod.default || OpenAIMod;
const Anthropic = require('@anthropic-ai/sdk').default;

const stateDir = fs.mkdtempSync(path.join(os.tmpdir(), 'mlxm-keepalive-'));
const NAME = 'keepalive-random';
let srv = null;

// POSTs `body` and returns the raw response text (the whole SSE stream).
async function rawStream(url, body, headers = {}) {
  const res = await fetch(url, { method: 'POST', headers: { 'content-type': 'application/json', ...headers }, body: JSON.stringify(body) });
  return { status: res.status, type: res.headers.get('content-type'), text: await res.text() };
}

try {
  // Wider than the tiny preset so that a 1800-token prefill takes a while on any machine.
  const mk = runBin(['mkmodel', '--arch', 'qwen3', '--preset', 'tiny', '--hidden', '256', '--layers', '4', '--ffn', '512',
    '--dtype', 'f32', '--out', path.join(stateDir, 'models', NAME)]);
  if (mk.status !== 0) throw new Error(`mkmodel failed: ${mk.stderr}`);
  srv = await startServer('workers: 4\n', { stateDir, env: { MLXM_SSE_KEEPALIVE_MS: '1' } });
  const U = srv.url;
  const words = Array.from({ length: 1800 }, (_, i) => String.fromCharCode(97 + (i * 7) % 26)).join(' ');
  const long = [{ role: 'user', content: words }];

  // ---- OpenAI: chat and completions ------------------------------------------------------
  for (const [endpoint, body] of [
    ['/v1/chat/completions', { model: NAME, messages: long, max_tokens: 4, ignore_eos: true, seed: 1, stream: true }],
    ['/v1/completions', { model: NAME, prompt: words, max_tokens: 4, ignore_eos: true, seed: 1, stream: true }],
  ]) {
    const r = await rawStream(`${U}${endpoint}`, body);
    const firstText = r.text.search(/"(content|text)":"[^"]/);
    const keep = r.text.indexOf(': keep-alive\n\n');
    check(`${endpoint}: ": keep-alive" comment during the prefill, before the first generated text`,
      r.status === 200 && /text\/event-stream/.test(r.type) && keep >= 0 && firstText > keep && r.text.trimEnd().endsWith('data: [DONE]'),
      r.text.slice(0, 600));
  }
  const client = new OpenAI({ baseURL: `${U}/v1`, apiKey: 'unused', maxRetries: 0 });
  const chunks = [];
  for await (const c of await client.chat.completions.create({ model: NAME, messages: long, max_tokens: 4, ignore_eos: true, seed: 1, stream: true })) chunks.push(c);
  const whole = await client.chat.completions.create({ model: NAME, messages: long, max_tokens: 4, ignore_eos: true, seed: 1 });
  check('OpenAI SDK reads the stream with keep-alives: same text as without streaming',
    chunks.map((c) => (c.choices[0] && c.choices[0].delta.content) || '').join('') === whole.choices[0].message.content &&
    chunks.some((c) => c.choices[0] && c.choices[0].finish_reason === 'length'), chunks);

  // ---- Anthropic -------------------------------------------------------------------------
  // A prompt of its own: the chat prompt above is in the prefix cache now, and a cached
  // prompt has (rightly) no prefill to wait for.
  const fresh = [{ role: 'user', content: `anthropic ${words}` }];
  const abody = { model: NAME, max_tokens: 4, temperature: 0, messages: fresh, stream: true };
  const ar = await rawStream(`${U}/v1/messages`, abody, { 'anthropic-version': '2023-06-01' });
  const events = [...ar.text.matchAll(/^event: (\S+)$/gm)].map((m) => m[1]);
  const firstDelta = events.indexOf('content_block_delta');
  check('/v1/messages: `event: ping` during the prefill, beyond the one after message_start',
    ar.status === 200 && events[0] === 'message_start' && events[1] === 'ping' && firstDelta > 2 &&
    events.slice(2, firstDelta).includes('ping') && events[events.length - 1] === 'message_stop', events);
  const anthropic = new Anthropic({ baseURL: U, apiKey: 'unused', maxRetries: 0 });
  const fin = await anthropic.messages.stream({ model: NAME, max_tokens: 4, temperature: 0, messages: long }).finalMessage();
  const plain = await anthropic.messages.create({ model: NAME, max_tokens: 4, temperature: 0, messages: long });
  check('Anthropic SDK reads the stream with pings: same content as without streaming',
    fin.stop_reason === 'max_tokens' && JSON.stringify(fin.content) === JSON.stringify(plain.content), [fin, plain]);
} catch (e) {
  check(`unexpected error: ${e.stack || e}`, false);
} finally {
  if (srv) srv.cleanup();
  fs.rmSync(stateDir, { recursive: true, force: true });
  finish();
}
