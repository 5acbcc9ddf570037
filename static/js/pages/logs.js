// pages/logs.js - model activity while this page is open.  The daemon has
// no per-request log endpoint yet, so this page polls /api/servers and
// adds an entry whenever a model's request or token counters move: real
// numbers, one entry per poll interval rather than per request.
import { get } from '../api.js';
import { h, clear, emptyState, uid } from '../dom.js';
import * as fmt from '../format.js';
import { toastError } from '../toast.js';

const POLL_MS = 2000;
const MAX_ENTRIES = 500;

export function mount(main) {
  const filter = h('input', { type: 'search', id: uid('l'), placeholder: 'Model name', autocomplete: 'off' });
  const stateFilter = h('select', { id: uid('l') },
    h('option', { value: '' }, 'Everything'),
    h('option', { value: 'requests' }, 'Requests only'),
    h('option', { value: 'state' }, 'Load / unload only'));
  const rows = h('tbody');
  const table = h('table', { class: 'log-table' },
    h('caption', { class: 'sr-only' }, 'Model activity'),
    h('thead', {}, h('tr', {},
      ['Time', 'Model', 'Event', 'Requests', 'Tokens', 'Tokens/s', 'Queue'].map((c) => h('th', { scope: 'col' }, c)))),
    rows);
  const empty = emptyState('No activity yet.', 'Entries appear when a model loads, unloads or serves requests while this page is open.');
  clear(main,
    h('h1', {}, 'Logs'),
    h('p', { class: 'notice', role: 'note' },
      'The daemon does not offer a per-request log feed yet. This page checks /api/servers every 2 seconds and lists what changed: requests served and tokens generated per model in that interval, and models loading or unloading.'),
    h('div', { class: 'filters' },
      h('div', { class: 'field' }, h('label', { for: filter.id }, 'Filter by model'), filter),
      h('div', { class: 'field' }, h('label', { for: stateFilter.id }, 'Show'), stateFilter)),
    empty,
    h('div', { class: 'table-wrap' }, table));

  const entries = [];
  const last = new Map();
  let timer = null;
  let stopped = false;
  let reported = false;

  function visible(e) {
    const q = filter.value.trim().toLowerCase();
    if (q && !e.model.toLowerCase().includes(q)) return false;
    if (stateFilter.value === 'requests') return e.kind === 'requests';
    if (stateFilter.value === 'state') return e.kind === 'state';
    return true;
  }

  function render() {
    const shown = entries.filter(visible);
    empty.hidden = shown.length > 0;
    table.hidden = shown.length === 0;
    clear(rows, shown.map((e) => h('tr', {},
      h('td', {}, e.time.toLocaleTimeString()), h('td', {}, e.model), h('td', {}, e.event),
      h('td', {}, e.requests), h('td', {}, e.tokens), h('td', {}, e.tps), h('td', {}, e.queue))));
  }
  filter.addEventListener('input', render);
  stateFilter.addEventListener('change', render);

  function add(entry) {
    entries.unshift({ time: new Date(), ...entry });
    if (entries.length > MAX_ENTRIES) entries.pop();
  }

  async function poll() {
    try {
      const r = await get('/api/servers');
      reported = false;
      const seen = new Set();
      for (const s of r.servers) {
        const key = s.id !== null ? `p${s.id}` : `m${s.name}`;
        seen.add(key);
        const prev = last.get(key);
        last.set(key, s);
        if (!prev) continue; // first sight: a baseline, not an event
        if (prev.state !== s.state) {
          add({ model: s.name, kind: 'state', event: `${prev.state} → ${s.state}`, requests: '', tokens: '', tps: '', queue: '' });
        }
        const dr = (s.requests_served || 0) - (prev.requests_served || 0);
        const dt = (s.completion_tokens || 0) - (prev.completion_tokens || 0);
        if (s.state !== 'stopped' && (dr > 0 || dt > 0 || (s.leases || 0) > 0)) {
          add({
            model: s.name, kind: 'requests', event: dr > 0 ? 'served' : 'running',
            requests: `+${Math.max(0, dr)}`, tokens: `+${fmt.count(Math.max(0, dt))}`,
            tps: (s.tokens_per_second || 0).toFixed(1), queue: `${s.leases || 0} running, ${s.queue_depth || 0} waiting`,
          });
        }
      }
      for (const key of [...last.keys()]) if (!seen.has(key)) last.delete(key);
      render();
    } catch (err) {
      if (!reported) toastError(err);
      reported = true;
    }
    if (!stopped) timer = setTimeout(poll, POLL_MS);
  }
  render();
  poll();
  return () => {
    stopped = true;
    clearTimeout(timer);
  };
}
