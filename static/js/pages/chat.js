// pages/chat.js - a playground over /v1/chat/completions with stream:
// true.  Tokens are read from the fetch body as Server-Sent Events; Stop
// aborts the request (the daemon then cancels the generation).  Answers
// render as safe Markdown; reasoning_content goes into a folded section.
import { get } from '../api.js';
import { h, clear, emptyState, uid } from '../dom.js';
import { renderMarkdown } from '../markdown.js';
import { stream } from '../sse.js';
import { toastError } from '../toast.js';

function labelled(label, input) {
  input.id = input.id || uid('c');
  return h('div', { class: 'field' }, h('label', { for: input.id }, label), input);
}

// One assistant answer: reasoning (folded), content and the metrics line.
function answerView() {
  const reasoningText = h('div', { class: 'reasoning-text' });
  const reasoning = h('details', { class: 'reasoning', hidden: true }, h('summary', {}, 'Reasoning'), reasoningText);
  const content = h('div', { class: 'content markdown' });
  const metrics = h('p', { class: 'metrics muted' }, 'Waiting for the first token…');
  const el = h('div', { class: 'msg msg-assistant' }, h('span', { class: 'msg-role' }, 'Assistant'), reasoning, content, metrics);
  let pending = false;
  let text = '';
  let thought = '';
  const draw = () => {
    pending = false;
    // Follow the answer as it grows, unless the reader scrolled up.
    const following = window.innerHeight + window.scrollY >= document.documentElement.scrollHeight - 80;
    clear(content, renderMarkdown(text));
    if (following) window.scrollTo(0, document.documentElement.scrollHeight);
    reasoningText.textContent = thought;
    reasoning.hidden = !thought;
  };
  return {
    el, metrics,
    add(contentDelta, reasoningDelta) {
      text += contentDelta || '';
      thought += reasoningDelta || '';
      if (!pending) {
        pending = true;
        requestAnimationFrame(draw);
      }
    },
    finish() {
      draw();
      return text;
    },
  };
}

export function mount(main) {
  const model = h('select', { name: 'model' }, h('option', { value: '' }, 'Loading models…'));
  const system = h('textarea', { name: 'system', rows: 3, placeholder: 'Optional' });
  const temperature = h('input', { type: 'number', name: 'temperature', min: 0, max: 2, step: 'any', placeholder: 'default' });
  const maxTokens = h('input', { type: 'number', name: 'max_tokens', min: 1, step: 1, value: 256 });
  const clearBtn = h('button', { type: 'button' }, 'New conversation');
  const log = h('div', { class: 'chat-log', role: 'log', 'aria-label': 'Conversation', 'aria-live': 'polite' });
  const emptyLog = emptyState('No messages yet.', 'Pick a model, type a message and press Send (Enter; Shift+Enter for a new line).');
  const prompt = h('textarea', { name: 'prompt', rows: 3, placeholder: 'Message', 'aria-label': 'Message' });
  const send = h('button', { type: 'submit', class: 'primary' }, 'Send');
  const stop = h('button', { type: 'button', class: 'danger', hidden: true }, 'Stop');
  const composer = h('form', { class: 'composer' }, prompt, h('div', { class: 'actions' }, stop, send));
  clear(main,
    h('h1', {}, 'Chat'),
    h('div', { class: 'chat' },
      h('section', { class: 'chat-settings card', 'aria-label': 'Chat settings' },
        labelled('Model or profile', model),
        labelled('System prompt', system),
        h('div', { class: 'grid2' }, labelled('Temperature', temperature), labelled('Max tokens', maxTokens)),
        clearBtn),
      h('section', { class: 'chat-main', 'aria-label': 'Conversation' }, emptyLog, log, composer)));

  let history = [];
  let controller = null;

  get('/v1/models').then((r) => {
    const sorted = [...r.data].sort((a, b) => (b.profile - a.profile) || (b.loaded - a.loaded));
    clear(model, sorted.length
      ? sorted.map((m) => h('option', { value: m.id }, `${m.id}${m.profile ? ' (profile)' : ''}${m.loaded ? ' · loaded' : ''}`))
      : h('option', { value: '' }, 'No models: download one or create a profile'));
  }).catch((err) => {
    clear(model, h('option', { value: '' }, 'Models unavailable'));
    toastError(err);
  });

  clearBtn.addEventListener('click', () => {
    if (controller) controller.abort();
    history = [];
    clear(log);
    emptyLog.hidden = false;
  });
  stop.addEventListener('click', () => controller && controller.abort());
  prompt.addEventListener('keydown', (e) => {
    if (e.key === 'Enter' && !e.shiftKey && !e.isComposing) {
      e.preventDefault();
      composer.requestSubmit();
    }
  });
  composer.addEventListener('submit', (e) => {
    e.preventDefault();
    const text = prompt.value.trim();
    if (!text || controller) return;
    if (!model.value) {
      toastError(new Error('Pick a model first'));
      return;
    }
    prompt.value = '';
    history.push({ role: 'user', content: text });
    emptyLog.hidden = true;
    log.append(h('div', { class: 'msg msg-user' }, h('span', { class: 'msg-role' }, 'You'), h('p', { class: 'user-text' }, text)));
    run();
  });

  async function run() {
    const answer = answerView();
    log.append(answer.el);
    composer.scrollIntoView({ block: 'end' });
    const messages = system.value.trim() ? [{ role: 'system', content: system.value }, ...history] : [...history];
    const body = { model: model.value, messages, stream: true, stream_options: { include_usage: true } };
    if (temperature.value !== '') body.temperature = Number(temperature.value);
    if (maxTokens.value !== '') body.max_tokens = Number(maxTokens.value);
    controller = new AbortController();
    send.disabled = true;
    stop.hidden = false;
    const started = performance.now();
    let first = null;
    let chunks = 0;
    let usage = null;
    let finish = null;
    let outcome = 'done';
    try {
      for await (const ev of stream('/v1/chat/completions', { method: 'POST', body, signal: controller.signal })) {
        if (ev.data === '[DONE]') break;
        const chunk = JSON.parse(ev.data);
        if (chunk.error) throw new Error(chunk.error.message);
        if (chunk.usage) usage = chunk.usage;
        const choice = chunk.choices && chunk.choices[0];
        if (!choice) continue;
        const d = choice.delta || {};
        if (d.content || d.reasoning_content) {
          if (first === null) first = performance.now();
          chunks += 1;
          answer.add(d.content, d.reasoning_content);
        }
        if (choice.finish_reason) finish = choice.finish_reason;
      }
    } catch (err) {
      if (err.name === 'AbortError') outcome = 'stopped';
      else {
        outcome = 'error';
        toastError(err);
      }
    }
    const end = performance.now();
    const text = answer.finish();
    if (text) history.push({ role: 'assistant', content: text });
    const parts = [];
    if (first !== null) parts.push(`TTFT ${((first - started) / 1000).toFixed(2)} s`);
    const tokens = usage ? usage.completion_tokens : chunks;
    const secs = first !== null ? (end - first) / 1000 : 0;
    if (tokens && secs > 0) parts.push(`${usage ? '' : '≈'}${(tokens / secs).toFixed(1)} tokens/s`);
    parts.push(usage ? `${usage.prompt_tokens} prompt + ${usage.completion_tokens} completion tokens` : `≈${chunks} tokens`);
    if (outcome === 'stopped') parts.push('stopped');
    else if (outcome === 'error') parts.push('failed');
    else if (finish) parts.push(`finish: ${finish}`);
    answer.metrics.textContent = parts.join(' · ');
    answer.el.dataset.outcome = outcome;
    controller = null;
    send.disabled = false;
    stop.hidden = true;
    prompt.focus();
  }

  return () => controller && controller.abort();
}
