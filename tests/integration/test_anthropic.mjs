// test_anthropic.mjs - the Anthropic Messages API through the real nginx +
// daemon with the real @anthropic-ai/sdk, against a random-weight Qwen2
// model from `mkmodel` with a tool- and thinking-aware ChatML template.
// Greedy decoding (temperature 0) keeps every comparison deterministic.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { createRequire } from 'node:module';
import {
  check, finish, startServer, request, runBin, sanitizerReports, waitFor, REPO,
} from './lib.mjs';

const require = createRequire(path.join(REPO, 'tests/package.json'));
const Anthropic = require('@anthropic-ai/sdk').default;

// Qwen2.5-style: tools in the system turn, tool calls and tool responses in
// their own tags, and an open <think> when thinking is enabled (with no
// newline after it: a random model tends to repeat the last prompt token,
// and a whitespace-only reasoning would be dropped).
const TEMPLATE = `{%- if tools %}<|im_start|>system
{% if messages[0].role == 'system' %}{{ messages[0].content }}{% else %}You are a helpful assistant.{% endif %}

# Tools
<tools>
{%- for tool in tools %}
{{ tool | tojson }}
{%- endfor %}
</tools><|im_end|>
{% elif messages[0].role == 'system' %}<|im_start|>system
{{ messages[0].content }}<|im_end|>
{% endif %}
{%- for message in messages %}
{%- if message.role == 'user' or (message.role == 'assistant' and not message.tool_calls) %}<|im_start|>{{ message.role }}
{{ message.content }}<|im_end|>
{% elif message.role == 'assistant' %}<|im_start|>assistant
{{ message.content }}{% for tc in message.tool_calls %}
<tool_call>
{"name": "{{ tc.function.name }}", "arguments": {{ tc.function.arguments | tojson }}}
</tool_call>{% endfor %}<|im_end|>
{% elif message.role == 'tool' %}<|im_start|>user
<tool_response>
{{ message.content }}
</tool_response><|im_end|>
{% endif %}
{%- endfor %}
{%- if add_generation_prompt %}<|im_start|>assistant
{% if enable_thinking %}<think>{% endif %}{% endif %}`;

const modelDir = fs.mkdtempSync(path.join(os.tmpdir(), 'mlxm-anthropic-model-'));
let srv = null;
try {
  const mk = runBin(['mkmodel', '--arch', 'qwen2', '--preset', 'tiny', '--dtype', 'f32', '--out', modelDir, '--force']);
  if (mk.status !== 0) throw new Error(`mkmodel failed: ${mk.stderr}`);
  fs.writeFileSync(path.join(modelDir, 'chat_template.jinja'), TEMPLATE);

  srv = await startServer('workers: 4\n');
  const U = srv.url;
  const MODEL = modelDir;
  const client = new Anthropic({
    baseURL: U, apiKey: 'unused', maxRetries: 0,
    defaultHeaders: { 'anthropic-beta': 'interleaved-thinking-2025-05-14,fine-grained-tool-streaming-2025-05-14' },
  });
  const base = { model: MODEL, temperature: 0 };
  const user = (text) => [{ role: 'user', content: text }];

  // ---- non-streaming shape ---------------------------------------------------
  const m1 = await client.messages.create({ ...base, max_tokens: 24, messages: user('Tell me a story') });
  check('message shape', /^msg_/.test(m1.id) && m1.type === 'message' && m1.role === 'assistant' &&
    m1.model === MODEL && Array.isArray(m1.content) && ['end_turn', 'max_tokens'].includes(m1.stop_reason) &&
    m1.stop_sequence === null, m1);
  check('content is text blocks', m1.content.length >= 1 && m1.content.every((b) => b.type === 'text' && typeof b.text === 'string'), m1.content);
  const u1 = m1.usage || {};
  check('usage has every counter', u1.input_tokens > 5 && u1.output_tokens > 0 && u1.output_tokens <= 24 &&
    u1.cache_read_input_tokens >= 0 && u1.cache_read_input_tokens < u1.input_tokens &&
    u1.cache_creation_input_tokens === 0, u1);
  const text1 = m1.content.map((b) => b.text).join('');
  const again = await client.messages.create({ ...base, max_tokens: 24, messages: user('Tell me a story') });
  check('greedy is deterministic', again.content.map((b) => b.text).join('') === text1);

  // ---- concurrent streams: batched greedy decoding gives each the same text -------
  const texts = await Promise.all([0, 1, 2, 3].map(async () => {
    const s = client.messages.stream({ ...base, max_tokens: 24, messages: user('Tell me a story') });
    return (await s.finalMessage()).content.map((b) => b.text).join('');
  }));
  check('4 concurrent streams each give the non-streaming text', texts.every((t) => t === text1), texts);

  // ---- max_tokens ----------------------------------------------------------------
  const m2 = await client.messages.create({ ...base, max_tokens: 3, messages: user('Tell me a story') });
  check('max_tokens -> stop_reason max_tokens', m2.stop_reason === 'max_tokens' && m2.usage.output_tokens === 3, m2);

  // ---- streaming: raw event sequence ---------------------------------------------
  const raw = await client.messages.create({ ...base, max_tokens: 24, messages: user('Tell me a story'), stream: true });
  const events = [];
  for await (const ev of raw) events.push(ev);
  const types = events.map((e) => e.type);
  check('stream starts with message_start', types[0] === 'message_start' && events[0].message.content.length === 0 &&
    events[0].message.stop_reason === null && events[0].message.usage.input_tokens === u1.input_tokens &&
    events[0].message.id.startsWith('msg_'), events[0]);
  check('stream ends with message_delta, message_stop',
    types.at(-1) === 'message_stop' && types.at(-2) === 'message_delta', types);
  const body = types.filter((t) => t !== 'ping').slice(1, -2);
  let order = true;
  let open = -1;
  let next = 0;
  for (const [i, e] of events.entries()) {
    if (e.type === 'content_block_start') { order &&= open === -1 && e.index === next; open = e.index; next++; }
    else if (e.type === 'content_block_delta') order &&= e.index === open;
    else if (e.type === 'content_block_stop') { order &&= e.index === open; open = -1; }
    else if (e.type === 'message_delta' || e.type === 'message_stop') order &&= open === -1 && i >= events.length - 2;
  }
  check('blocks start, delta and stop in index order', order && body[0] === 'content_block_start' &&
    body.at(-1) === 'content_block_stop', types);
  const streamed = events.filter((e) => e.type === 'content_block_delta' && e.delta.type === 'text_delta')
    .map((e) => e.delta.text).join('');
  check('streamed deltas == non-streaming text', streamed === text1, { streamed, text1 });
  const md = events.at(-2);
  check('message_delta carries stop_reason and cumulative output_tokens',
    md.delta.stop_reason === m1.stop_reason && md.delta.stop_sequence === null &&
    md.usage.output_tokens === u1.output_tokens, md);

  // ---- streaming: the SDK's MessageStream helper ----------------------------------
  const ms = client.messages.stream({ ...base, max_tokens: 24, messages: user('Tell me a story') });
  let deltaText = '';
  ms.on('text', (t) => { deltaText += t; });
  const fm = await ms.finalMessage();
  check('MessageStream final message == non-streaming',
    JSON.stringify(fm.content) === JSON.stringify(m1.content) && fm.stop_reason === m1.stop_reason &&
    fm.usage.output_tokens === u1.output_tokens && fm.usage.input_tokens === u1.input_tokens && deltaText === text1,
    { fm, m1 });

  // ---- raw SSE framing: event name == data.type ------------------------------------
  let r = await fetch(U + '/v1/messages', {
    method: 'POST', headers: { 'content-type': 'application/json', 'anthropic-version': '2023-06-01' },
    body: JSON.stringify({ ...base, max_tokens: 4, messages: user('hi'), stream: true }),
  });
  const sse = await r.text();
  const frames = sse.split('\n\n').filter((f) => f.trim());
  check('SSE frames are "event: NAME\\ndata: {json}" with matching type',
    r.headers.get('content-type').startsWith('text/event-stream') && frames.length >= 5 &&
    frames.every((f) => { const m = /^event: (\w+)\ndata: (.*)$/s.exec(f); return m && JSON.parse(m[2]).type === m[1]; }),
    sse.slice(0, 400));
  check('ping event after message_start', /^event: ping\ndata: \{"type":"ping"\}$/.test(frames[1]), frames[1]);

  // ---- stop_sequences -----------------------------------------------------------
  const long = await client.messages.create({ ...base, max_tokens: 40, messages: user('Count for me') });
  const longText = long.content.map((b) => b.text).join('');
  const stopAt = Math.min(6, Math.floor(longText.length / 2));
  const stopSeq = [...longText].slice(stopAt, stopAt + 2).join('');
  const expectText = longText.slice(0, longText.indexOf(stopSeq));
  const m3 = await client.messages.create({ ...base, max_tokens: 40, messages: user('Count for me'), stop_sequences: ['NEVER-SEEN', stopSeq] });
  check('stop_sequences -> stop_reason stop_sequence', m3.stop_reason === 'stop_sequence' && m3.stop_sequence === stopSeq &&
    m3.content.map((b) => b.text).join('') === expectText, { m3, stopSeq, expectText, longText });
  const s3 = await client.messages.stream({ ...base, max_tokens: 40, messages: user('Count for me'), stop_sequences: [stopSeq] }).finalMessage();
  check('streamed stop_sequence matches', s3.stop_reason === 'stop_sequence' && s3.stop_sequence === stopSeq &&
    s3.content.map((b) => b.text).join('') === expectText, s3);

  // ---- count_tokens == usage.input_tokens -----------------------------------------
  const bodies = {
    plain: { messages: user('Tell me a story') },
    'system string': { system: 'You are terse.\n\nReally.', messages: user('Tell me a story') },
    'system blocks': { system: [{ type: 'text', text: 'You are terse.', cache_control: { type: 'ephemeral' } }, { type: 'text', text: 'Really.' }], messages: user('Tell me a story') },
    tools: {
      messages: user('Weather in Paris?'),
      tools: [{ name: 'get_weather', description: 'Current weather', input_schema: { type: 'object', properties: { city: { type: 'string' } }, required: ['city'] } }],
    },
    'tool round trip': {
      messages: [
        { role: 'user', content: 'Weather in Paris?' },
        { role: 'assistant', content: [{ type: 'text', text: 'Let me check.' }, { type: 'tool_use', id: 'toolu_01', name: 'get_weather', input: { city: 'Paris' } }] },
        { role: 'user', content: [{ type: 'tool_result', tool_use_id: 'toolu_01', content: [{ type: 'text', text: 'Sunny, 21C' }] }] },
      ],
      tools: [{ name: 'get_weather', description: 'Current weather', input_schema: { type: 'object', properties: { city: { type: 'string' } } } }],
      tool_choice: { type: 'auto' },
    },
  };
  const counts = {};
  const outputs = {};
  for (const [name, b] of Object.entries(bodies)) {
    const ct = await client.messages.countTokens({ model: MODEL, ...b });
    const msg = await client.messages.create({ ...base, max_tokens: 8, ...b });
    counts[name] = ct.input_tokens;
    outputs[name] = msg.content.map((x) => x.text).join('');
    check(`count_tokens == usage.input_tokens (${name})`, ct.input_tokens > 0 && ct.input_tokens === msg.usage.input_tokens,
      { ct, usage: msg.usage });
  }
  check('system as string and as blocks render the same', counts['system string'] === counts['system blocks'] &&
    outputs['system string'] === outputs['system blocks'] && counts['system string'] > counts.plain, counts);
  check('tool definitions reach the template', counts.tools > counts.plain + 20, counts);
  check('tool_use and tool_result turns reach the template', counts['tool round trip'] > counts.tools + 10, counts);
  const ctNone = await client.messages.countTokens({ model: MODEL, ...bodies.tools, tool_choice: { type: 'none' } });
  check('tool_choice none hides the tools', ctNone.input_tokens < counts.tools, ctNone);
  const streamTools = await client.messages.stream({ ...base, max_tokens: 8, ...bodies.tools }).finalMessage();
  check('stream: true with tools', ['end_turn', 'max_tokens', 'tool_use'].includes(streamTools.stop_reason), streamTools);

  // tool_choice any / tool are forced by constrained decoding: even a random model answers with
  // tool_use blocks (input an object, stop_reason tool_use), greedy or sampled.
  const twoTools = [...bodies.tools.tools, { name: 'get_time', input_schema: { type: 'object' } }];
  const validUses = (m, names) => m.stop_reason === 'tool_use' && m.content.length >= 1 &&
    m.content.every((b) => b.type === 'tool_use' && /^toolu_/.test(b.id) && names.includes(b.name) &&
      b.input !== null && typeof b.input === 'object' && !Array.isArray(b.input));
  const forcedBody = { max_tokens: 40, messages: user('Weather in Paris?'), tools: twoTools };
  for (const temperature of [0, 1, 1]) {
    const any = await client.messages.create({ ...base, temperature, ...forcedBody, tool_choice: { type: 'any' } });
    check(`tool_choice any (temperature ${temperature}): tool_use blocks naming the tools`,
      validUses(any, ['get_weather', 'get_time']) && any.usage.output_tokens <= 40, any);
    const one = await client.messages.create({ ...base, temperature, ...forcedBody, tool_choice: { type: 'tool', name: 'get_time' } });
    check(`tool_choice tool (temperature ${temperature}): one tool_use of that tool`,
      validUses(one, ['get_time']) && one.content.length === 1, one);
  }
  for (const tool_choice of [{ type: 'any' }, { type: 'tool', name: 'get_weather' }]) {
    const whole = await client.messages.create({ ...base, ...forcedBody, tool_choice });
    const events = [];
    const stream = client.messages.stream({ ...base, ...forcedBody, tool_choice });
    stream.on('streamEvent', (ev) => events.push(ev));
    const fin = await stream.finalMessage();
    const strip = (m) => JSON.stringify(m.content.map((b) => [b.type, b.name, b.input]));
    check(`stream with tool_choice ${tool_choice.type}: input_json_delta events add up to the answer`,
      fin.stop_reason === 'tool_use' && strip(fin) === strip(whole) &&
      events.some((ev) => ev.type === 'content_block_delta' && ev.delta.type === 'input_json_delta'), [fin, whole]);
  }

  // ---- Claude Code's shapes: system role inline, unknown fields, metadata --------
  r = await request(U, 'POST', '/v1/messages', {
    ...base, max_tokens: 4, metadata: { user_id: 'u1' }, some_future_field: { x: 1 }, service_tier: 'auto',
    messages: [{ role: 'system', content: 'You are terse.\n\nReally.' }, { role: 'user', content: [{ type: 'text', text: 'Tell me a story', cache_control: { type: 'ephemeral' } }] }],
  }, { 'anthropic-version': '2023-06-01', 'anthropic-beta': 'prompt-caching-2024-07-31' });
  check('inline system message, cache_control, unknown fields accepted',
    r.status === 200 && r.json.usage.input_tokens === counts['system string'], r.text);

  // ---- thinking --------------------------------------------------------------------
  const th = { ...base, max_tokens: 12, thinking: { type: 'enabled', budget_tokens: 8 }, messages: user('Think first') };
  const m4 = await client.messages.create(th);
  check('thinking -> a thinking block (the template opens <think>)',
    m4.content.length >= 1 && m4.content[0].type === 'thinking' && typeof m4.content[0].thinking === 'string' &&
    typeof m4.content[0].signature === 'string', m4.content);
  const thEvents = [];
  for await (const ev of await client.messages.create({ ...th, stream: true })) thEvents.push(ev);
  const thStart = thEvents.find((e) => e.type === 'content_block_start');
  const thText = thEvents.filter((e) => e.type === 'content_block_delta' && e.delta.type === 'thinking_delta').map((e) => e.delta.thinking).join('');
  check('streamed thinking_delta == non-streaming thinking', thStart && thStart.content_block.type === 'thinking' &&
    thText === m4.content[0].thinking, { thText, m4: m4.content[0] });

  // ---- prefill -------------------------------------------------------------------
  const m5 = await client.messages.create({ ...base, max_tokens: 6, messages: [...user('Tell me a story'), { role: 'assistant', content: 'Once upon' }] });
  const ct5 = await client.messages.countTokens({ model: MODEL, messages: [...user('Tell me a story'), { role: 'assistant', content: 'Once upon' }] });
  check('a final assistant message is continued', m5.usage.input_tokens === ct5.input_tokens &&
    ct5.input_tokens > counts.plain && m5.usage.output_tokens > 0, { m5, ct5 });

  // ---- errors -----------------------------------------------------------------------
  async function sdkError(params, fn = (p) => client.messages.create(p)) {
    try { await fn(params); return null; } catch (e) { return e; }
  }
  let e = await sdkError({ model: MODEL, messages: user('hi') });
  check('missing max_tokens -> 400 invalid_request_error', e && e.status === 400 && e.error?.type === 'error' &&
    e.error?.error?.type === 'invalid_request_error' && /max_tokens/.test(e.error?.error?.message), e && e.error);
  e = await sdkError({ ...base, max_tokens: 5, messages: [{ role: 'bot', content: 'hi' }] });
  check('bad role -> 400 invalid_request_error', e && e.status === 400 && e.error?.error?.type === 'invalid_request_error' &&
    /role/.test(e.error.error.message), e && e.error);
  e = await sdkError({ model: 'no-such/model', max_tokens: 5, messages: user('hi') });
  check('unknown model -> 404 not_found_error', e && e.status === 404 && e.error?.error?.type === 'not_found_error', e && e.error);
  e = await sdkError({ model: 'no-such/model', messages: user('hi') }, (p) => client.messages.countTokens(p));
  check('count_tokens unknown model -> 404 not_found_error', e && e.status === 404 && e.error?.error?.type === 'not_found_error', e && e.error);
  e = await sdkError({ ...base, max_tokens: 5, messages: [{ role: 'user', content: [{ type: 'image', source: { type: 'base64', media_type: 'image/png', data: 'iVBORw0KGgo=' } }] }] });
  check('image block -> 400 (text model)', e && e.status === 400 && /image/.test(e.error?.error?.message), e && e.error);
  e = await sdkError({ ...base, max_tokens: 5, messages: user('x'), stream: true }, async (p) => {
    const s = await client.messages.create({ ...p, temperature: 3 });
    for await (const _ of s);
  });
  check('bad temperature on a stream -> 400 before the stream', e && e.status === 400, e && e.error);
  for (const [name, bodyText] of [['malformed JSON', '{"model":'], ['empty body', ''], ['not an object', '[1,2]']]) {
    r = await request(U, 'POST', '/v1/messages', bodyText);
    check(`${name} -> 400 Anthropic error`, r.status === 400 && r.json?.type === 'error' &&
      r.json.error.type === 'invalid_request_error' && typeof r.json.error.message === 'string', r.text);
  }
  r = await request(U, 'GET', '/v1/messages');
  check('GET /v1/messages -> 405', r.status === 405, r.text);
  r = await request(U, 'POST', '/v1/messages/count_tokens', { model: MODEL, messages: [] });
  check('count_tokens with no messages -> 400', r.status === 400 && r.json?.error?.type === 'invalid_request_error', r.text);

  // ---- profiles: defaults under the request's values; a full queue -----------------
  r = await request(U, 'POST', '/api/profiles', {
    name: 'tiny-anthropic', model_path: MODEL, temperature: 0, system_prompt: 'You are terse.\n\nReally.',
    max_concurrency: 1, queue_size: 0,
  });
  check('profile created', r.status === 201, r.text);
  const viaProfile = await client.messages.create({ model: 'tiny-anthropic', max_tokens: 8, messages: user('Tell me a story') });
  check('profile system_prompt and temperature apply when the request has none',
    viaProfile.model === 'tiny-anthropic' && viaProfile.usage.input_tokens === counts['system string'] &&
    viaProfile.content.map((b) => b.text).join('') === outputs['system string'], viaProfile);
  const ownSystem = await client.messages.countTokens({ model: 'tiny-anthropic', system: 'Other.', messages: user('Tell me a story') });
  check("the request's system replaces the profile's", ownSystem.input_tokens < counts['system string'], ownSystem);
  const busyAbort = new AbortController();
  const busy = await client.messages.create({ model: 'tiny-anthropic', max_tokens: 6000, messages: user('Tell me a long story'), stream: true }, { signal: busyAbort.signal });
  const busyIter = busy[Symbol.asyncIterator]();
  await busyIter.next(); // message_start: the slot is taken
  r = await request(U, 'POST', '/v1/messages', { model: 'tiny-anthropic', max_tokens: 4, messages: user('hi') });
  check('a full queue -> 429 rate_limit_error with Retry-After',
    r.status === 429 && r.json?.type === 'error' && r.json.error.type === 'rate_limit_error' &&
    Number(r.headers.get('retry-after')) > 0, r.text);
  busyAbort.abort();
  try { while (!(await busyIter.next()).done); } catch { /* aborted */ }

  // ---- a client that goes away cancels the generation and frees its KV ------------
  const status = async () => (await request(U, 'GET', '/admin/models/status')).json;
  // the model's entries in a status answer (it is loaded more than once by now)
  const entriesOf = (s) => (Array.isArray(s) ? s : s?.models || []).filter((x) => x.dir === MODEL || x.name === MODEL);
  const kvOf = (s) => entriesOf(s)[0];
  // every entry idle: no lease, every KV block free; one entry idle left an
  // earlier request winding down on another, whose steps the decode wait
  // below then counted
  const allIdle = (s) => {
    const es = entriesOf(s);
    return es.length > 0 && es.every((x) => x.kv_blocks_free === x.kv_blocks_total && x.leases === 0);
  };
  const ac = new AbortController();
  const gone = await client.messages.create({ ...base, max_tokens: 1800, messages: user('Tell me a long story'), stream: true }, { signal: ac.signal });
  let seen = 0;
  try {
    for await (const ev of gone) { if (ev.type === 'content_block_delta' && ++seen >= 3) ac.abort(); }
  } catch { /* aborted */ }
  const freed = await waitFor(async () => allIdle(await status()), 20000, 100);
  const k = kvOf(await status());
  check('disconnect cancels: KV blocks all free again, no lease held', freed, k);
  // Without a stream there is nothing to write until the end: the daemon
  // notices nginx closing the connection instead.
  const served = async () => (Array.isArray(await status()) ? [] : (await status()).models || [])
    .filter((x) => x.dir === MODEL).reduce((a, x) => a + x.completion_tokens, 0);
  const before = await served();
  const ac2 = new AbortController();
  const t0 = Date.now();
  const pending = client.messages.create({ ...base, max_tokens: 6000, messages: user('Tell me a long story') }, { signal: ac2.signal }).catch(() => null);
  // abort once it has decoded: running with its prompt in, and two more
  // scheduler steps since (its prompt can be all prefix-cache hits, so
  // "prompt in" alone may come before its first token), however long a busy
  // machine took to get it there (the model is loaded more than once by
  // now: whichever entry runs it)
  let stepsAtDecode = null;
  const decoding = await waitFor(async () => {
    const st = await status();
    const e = (Array.isArray(st) ? st : st?.models || []).find((x) => x.dir === MODEL &&
      x.scheduler && x.scheduler.running > 0 && x.scheduler.prefilling === 0);
    if (!e) return false;
    if (stepsAtDecode === null) stepsAtDecode = e.scheduler.steps;
    return e.scheduler.steps >= stepsAtDecode + 2;
  }, 20000, 10);
  ac2.abort();
  await pending;
  const freed2 = await waitFor(async () => allIdle(await status()), 20000, 20);
  const generated = (await served()) - before;
  check('non-streaming disconnect cancels too', decoding && freed2 && generated > 0 && generated < 6000,
    { decoding, generated, ms: Date.now() - t0 });
  check('requests after a disconnect work', (await client.messages.create({ ...base, max_tokens: 24, messages: user('Tell me a story') }))
    .content.map((b) => b.text).join('') === text1);

  check('no sanitizer reports', sanitizerReports(srv.runDir).length === 0, sanitizerReports(srv.runDir));
} catch (err) {
  check('unexpected exception', false, err.stack || String(err));
} finally {
  if (srv) srv.cleanup();
  fs.rmSync(modelDir, { recursive: true, force: true });
}
finish();
