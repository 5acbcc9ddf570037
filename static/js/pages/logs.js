// pages/logs.js - the daemon's log: recent lines from /api/logs, then live
// lines from /api/logs/stream (SSE) after the last one seen; filters go to
// the daemon as query parameters (level, msg, path, model, status).  Below,
// per-request metrics of inference requests from /api/logs/requests.
import { get } from '../api.js';
import { h, clear, emptyState, uid } from '../dom.js';
import { stream } from '../sse.js';
import { toastError } from '../toast.js';

const MAX_LINES = 500;
const RECONNECT_MS = 2000;
const REQUESTS_LIMIT = 50;
// The dashboard's own polling, hidden unless asked for.
const POLLING = /^\/api\/(health|servers|system\/memory|logs|models\/downloads?|models\/download\/[^/]+\/progress)(\?|$)/;
// Fields shown in their own columns; the rest go in "details".
const COLUMNS = new Set(['ts', 'level', 'msg', 'method', 'path', 'status', 'model', 'duration_ms',
  'prompt_tokens', 'completion_tokens', 'ttft_ms', 'tokens_per_second', 'seq', 'request_id']);

function labelled(label, input) {
  input.id = input.id || uid('l');
  return h('div', { class: 'field' }, h('label', { for: input.id }, label), input);
}

function num(v, digits = 0) {
  return typeof v === 'number' ? v.toFixed(digits) : '';
}

function time(ts) {
  const d = new Date(ts);
  return Number.isNaN(d.getTime()) ? String(ts || '') : d.toLocaleTimeString();
}

function lineRow(l) {
  const details = Object.entries(l).filter(([k]) => !COLUMNS.has(k))
    .map(([k, v]) => `${k}=${typeof v === 'string' ? v : JSON.stringify(v)}`).join(' ');
  const tokens = typeof l.completion_tokens === 'number' ? `${l.prompt_tokens} → ${l.completion_tokens}` : '';
  return h('tr', { dataset: { level: l.level || '' } },
    h('td', {}, time(l.ts)),
    h('td', {}, h('span', { class: 'badge', 'data-state': l.level === 'error' ? 'failed' : l.level === 'warn' ? 'paused' : '' }, l.level || '')),
    h('td', { class: 'wrap' }, l.msg === 'request' ? `${l.method} ${l.path}` : l.msg),
    h('td', {}, l.status ?? ''),
    h('td', { class: 'wrap' }, l.model || ''),
    h('td', {}, num(l.duration_ms, 1)),
    h('td', {}, tokens),
    h('td', {}, num(l.ttft_ms, 1)),
    h('td', {}, num(l.tokens_per_second, 1)),
    h('td', { class: 'wrap details' }, details));
}

export function mount(main) {
  const level = h('select', {}, ['debug', 'info', 'warn', 'error'].map((l) => h('option', { value: l, selected: l === 'info' }, l)));
  const requestsOnly = h('input', { type: 'checkbox', id: uid('l') });
  const showPolling = h('input', { type: 'checkbox', id: uid('l') });
  const path = h('input', { type: 'search', placeholder: '/v1/', autocomplete: 'off' });
  const model = h('input', { type: 'search', placeholder: 'exact name', autocomplete: 'off' });
  const status = h('input', { type: 'number', min: 0, max: 999, placeholder: 'e.g. 400' });
  const pause = h('button', { type: 'button', 'aria-pressed': 'false' }, 'Pause');
  const live = h('span', { class: 'live muted', role: 'status' }, 'Connecting…');
  const rows = h('tbody');
  const table = h('table', { class: 'log-table' },
    h('caption', { class: 'sr-only' }, 'Log lines, newest first'),
    h('thead', {}, h('tr', {}, ['Time', 'Level', 'Event', 'Status', 'Model', 'ms', 'Tokens', 'TTFT ms', 'Tokens/s', 'Details']
      .map((c) => h('th', { scope: 'col' }, c)))),
    rows);
  const empty = emptyState('No log lines match.', 'Lines appear here as the daemon writes them.');
  const reqRows = h('tbody');
  const reqTable = h('table', { class: 'log-table' },
    h('caption', { class: 'sr-only' }, 'Inference requests, newest first'),
    h('thead', {}, h('tr', {}, ['Time', 'Request', 'Status', 'Model', 'Prompt', 'Completion', 'TTFT ms', 'Tokens/s', 'ms']
      .map((c) => h('th', { scope: 'col' }, c)))),
    reqRows);
  const reqEmpty = emptyState('No inference requests yet.', 'Requests to /v1 show here with their tokens, time to first token and speed.');
  const form = h('form', { class: 'filters', 'aria-label': 'Log filters' },
    labelled('Minimum level', level), labelled('Path starts with', path), labelled('Model', model),
    labelled('Status at least', status),
    h('div', { class: 'checks' },
      h('div', { class: 'check' }, requestsOnly, h('label', { for: requestsOnly.id }, 'Requests only')),
      h('div', { class: 'check' }, showPolling, h('label', { for: showPolling.id }, 'Show the dashboard\'s polling'))));
  clear(main,
    h('div', { class: 'page-head' }, h('h1', {}, 'Logs'), h('div', { class: 'actions' }, live, pause)),
    form,
    h('section', { 'aria-labelledby': 'live-h' }, h('h2', { id: 'live-h' }, 'Live log'), empty, h('div', { class: 'table-wrap' }, table)),
    h('section', { 'aria-labelledby': 'req-h' }, h('h2', { id: 'req-h' }, 'Inference requests'), reqEmpty, h('div', { class: 'table-wrap' }, reqTable)));

  let lines = [];
  let controller = null;
  let stopped = false;
  let paused = false;
  let timer = null;
  let reqTimer = null;

  const visible = (l) => showPolling.checked || l.msg !== 'request' || !POLLING.test(l.path || '');
  function render() {
    const shown = lines.filter(visible);
    empty.hidden = shown.length > 0;
    table.hidden = shown.length === 0;
    clear(rows, shown.map(lineRow));
  }

  function query(after) {
    const q = new URLSearchParams({ level: level.value });
    if (requestsOnly.checked) q.set('msg', 'request');
    if (path.value.trim()) q.set('path', path.value.trim());
    if (model.value.trim()) q.set('model', model.value.trim());
    if (status.value !== '') q.set('status', status.value);
    if (after !== undefined) q.set('after', String(after));
    return q;
  }

  // Recent lines, then the stream from the newest of them on.
  async function connect() {
    if (controller) controller.abort();
    const ctl = new AbortController();
    controller = ctl;
    clearTimeout(timer);
    live.textContent = 'Connecting…';
    try {
      const q = query();
      q.set('limit', '200');
      const recent = await get(`/api/logs?${q}`, { signal: ctl.signal });
      lines = recent.data.reverse();
      render();
      live.textContent = paused ? 'Paused' : 'Live';
      for await (const ev of stream(`/api/logs/stream?${query(recent.last_seq)}`, { signal: ctl.signal })) {
        if (ev.event !== 'log') continue;
        const l = JSON.parse(ev.data);
        lines.unshift(l);
        if (lines.length > MAX_LINES) lines.pop();
        if (!paused) render();
        if (l.msg === 'request' && /^\/v1\//.test(l.path || '')) refreshRequests();
      }
    } catch (err) {
      if (err.name === 'AbortError') return;
      toastError(err);
    }
    if (stopped || controller !== ctl) return;
    live.textContent = 'Disconnected, retrying…';
    timer = setTimeout(connect, RECONNECT_MS);
  }

  function refreshRequests() {
    clearTimeout(reqTimer);
    reqTimer = setTimeout(async () => {
      try {
        const r = await get(`/api/logs/requests?limit=${REQUESTS_LIMIT}`);
        reqEmpty.hidden = r.data.length > 0;
        reqTable.hidden = r.data.length === 0;
        clear(reqRows, r.data.map((x) => h('tr', {},
          h('td', {}, time(x.ts)), h('td', { class: 'wrap' }, `${x.method} ${x.path}`), h('td', {}, x.status),
          h('td', { class: 'wrap' }, x.model || ''), h('td', {}, x.prompt_tokens ?? ''), h('td', {}, x.completion_tokens ?? ''),
          h('td', {}, num(x.ttft_ms, 1)), h('td', {}, num(x.tokens_per_second, 1)), h('td', {}, num(x.duration_ms, 1)))));
      } catch (err) {
        toastError(err);
      }
    }, 300);
  }

  for (const el of [level, requestsOnly, status]) el.addEventListener('change', connect);
  for (const el of [path, model]) el.addEventListener('change', connect);
  showPolling.addEventListener('change', render);
  form.addEventListener('submit', (e) => e.preventDefault());
  pause.addEventListener('click', () => {
    paused = !paused;
    pause.textContent = paused ? 'Resume' : 'Pause';
    pause.setAttribute('aria-pressed', String(paused));
    live.textContent = paused ? 'Paused' : 'Live';
    if (!paused) render();
  });

  connect();
  refreshRequests();
  return () => {
    stopped = true;
    clearTimeout(timer);
    clearTimeout(reqTimer);
    if (controller) controller.abort();
  };
}
