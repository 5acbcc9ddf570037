// pages/servers.js - the home page: memory, one tile per loaded model with
// live numbers (polled), and the profiles that are not loaded with Start.
// Tiles are kept per server and updated in place, so keyboard focus on
// their buttons survives each poll.
import { get, post } from '../api.js';
import { h, clear, emptyState } from '../dom.js';
import * as fmt from '../format.js';
import { sparkline } from '../sparkline.js';
import { toast, toastError } from '../toast.js';

const POLL_MS = 1500;
const HISTORY = 40;

function gauge(label) {
  const bar = h('span', { class: 'gauge-fill' });
  const el = h('div', { class: 'gauge', role: 'meter', 'aria-label': label, 'aria-valuemin': 0, 'aria-valuemax': 100 }, bar);
  return {
    el,
    set(pct, text) {
      const p = Math.max(0, Math.min(100, pct || 0));
      bar.style.width = `${p}%`;
      el.dataset.level = p > 90 ? 'high' : p > 70 ? 'mid' : 'low';
      el.setAttribute('aria-valuenow', String(Math.round(p)));
      el.setAttribute('aria-valuetext', text);
    },
  };
}

function stat(label) {
  const value = h('dd', {}, '—');
  return { el: h('div', { class: 'stat' }, h('dt', {}, label), value), value };
}

// The action of a tile: a profile's server stops through /api/servers, a
// model loaded by name unloads through /admin (which needs an admin key
// once API keys exist).
async function stopServer(s, button) {
  button.disabled = true;
  try {
    if (s.id !== null) await post(`/api/servers/${s.id}/stop`, {});
    else await post('/admin/models/unload', { model: s.name });
    toast(`${s.name} unloaded`);
  } catch (err) {
    toastError(err);
  } finally {
    button.disabled = false;
  }
}

function makeTile() {
  const history = [];
  const title = h('h3', { class: 'tile-title' });
  const sub = h('p', { class: 'tile-sub' });
  const state = h('span', { class: 'badge' });
  const mem = gauge('Share of the memory budget');
  const memText = h('span', { class: 'gauge-text' });
  const stats = {
    cpu: stat('CPU'), uptime: stat('Uptime'), requests: stat('Requests'), queue: stat('Running / waiting'),
  };
  const tps = h('span', { class: 'tps-value' });
  const spark = h('div', { class: 'spark' });
  const button = h('button', { type: 'button' });
  let current = null;
  button.addEventListener('click', () => stopServer(current, button));
  const el = h('article', { class: 'tile' },
    h('header', { class: 'tile-head' }, h('div', {}, title, sub), state),
    h('div', { class: 'tile-mem' }, h('span', { class: 'label' }, 'Memory'), mem.el, memText),
    h('dl', { class: 'stats' }, Object.values(stats).map((s) => s.el)),
    h('div', { class: 'tile-tps' },
      h('span', { class: 'label', title: 'Moving average of the decode speed of recent requests' }, 'Decode tokens/s'), tps, spark),
    h('div', { class: 'actions' }, button));
  return {
    el,
    update(s) {
      current = s;
      title.textContent = s.name;
      sub.textContent = s.profile ? `profile · ${s.model_path}` : (s.dir || 'loaded by model name');
      state.textContent = s.state;
      state.dataset.state = s.state;
      mem.set(s.memory_percent, `${fmt.percent(s.memory_percent)} of the budget`);
      memText.textContent = `${fmt.bytes(s.memory_bytes)} · ${fmt.percent(s.memory_percent)}`;
      stats.cpu.value.textContent = fmt.percent(s.cpu_percent);
      stats.uptime.value.textContent = fmt.duration(s.uptime_seconds);
      stats.requests.value.textContent = fmt.count(s.requests_served || 0);
      stats.queue.value.textContent = `${s.leases || 0} / ${s.queue_depth || 0}`;
      tps.textContent = (s.tokens_per_second || 0).toFixed(1);
      history.push(s.tokens_per_second || 0);
      if (history.length > HISTORY) history.shift();
      clear(spark, sparkline(history, { label: `Tokens per second, last ${history.length} samples` }));
      button.textContent = s.id !== null ? 'Stop' : 'Unload';
      button.setAttribute('aria-label', `${button.textContent} ${s.name}`);
    },
  };
}

function makeStopped() {
  const button = h('button', { type: 'button', class: 'primary' }, 'Start');
  const title = h('span', { class: 'row-title' });
  const path = h('span', { class: 'muted' });
  const el = h('li', { class: 'row' }, h('div', { class: 'row-main' }, title, path), button);
  let s = null;
  button.addEventListener('click', async () => {
    button.disabled = true;
    button.textContent = 'Starting…';
    try {
      await post(`/api/servers/${s.id}/start`, {});
      toast(`${s.name} is loaded`);
    } catch (err) {
      toastError(err);
      button.disabled = false;
      button.textContent = 'Start';
    }
  });
  return {
    el,
    update(next) {
      s = next;
      title.textContent = s.name;
      path.textContent = s.model_path;
      button.setAttribute('aria-label', `Start ${s.name}`);
    },
  };
}

// Loads any listed model by name through /admin/models/load (profiles
// start from their own rows below).
function loadForm() {
  const select = h('select', { id: 'load-model', name: 'model' }, h('option', { value: '' }, 'Loading the list…'));
  const button = h('button', { type: 'submit', class: 'primary' }, 'Load');
  const form = h('form', { class: 'inline-form', 'aria-label': 'Load a model' },
    h('div', { class: 'field' }, h('label', { for: 'load-model' }, 'Load a model by name'), select,
      h('p', { class: 'hint' }, 'Models in the models folder and the state directory that are not loaded.')),
    h('div', { class: 'field field-button' }, button));
  const refresh = async () => {
    try {
      const r = await get('/v1/models');
      const names = r.data.filter((m) => !m.profile && !m.loaded).map((m) => m.id);
      clear(select, names.length ? names.map((n) => h('option', { value: n }, n)) : h('option', { value: '' }, 'No unloaded model'));
      button.disabled = !names.length;
    } catch (err) {
      clear(select, h('option', { value: '' }, 'The list is unavailable'));
      button.disabled = true;
      toastError(err);
    }
  };
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    if (!select.value) return;
    const name = select.value;
    button.disabled = true;
    button.textContent = 'Loading…';
    try {
      await post('/admin/models/load', { model: name });
      toast(`${name} is loaded`);
    } catch (err) {
      toastError(err);
    }
    button.textContent = 'Load';
    button.disabled = false;
  });
  return { el: form, refresh };
}

export function mount(main) {
  const loader = loadForm();
  const sysText = h('p', { class: 'mem-text' }, 'Reading memory…');
  const budgetText = h('p', { class: 'mem-text' });
  const sysGauge = gauge('System memory in use');
  const budgetGauge = gauge('Memory budget in use by models');
  const running = h('div', { class: 'tiles' });
  const stopped = h('ul', { class: 'rows', 'aria-label': 'Profiles not loaded' });
  const runningEmpty = emptyState('No model is loaded.', 'Start a profile below, or send a request to /v1 — models load on their first request.');
  const stoppedEmpty = emptyState('Every profile is loaded, or there are none.', null);
  stoppedEmpty.append(h('p', {}, h('a', { href: '#/profiles/new' }, 'Create a profile')));
  clear(main,
    h('h1', {}, 'Servers'),
    h('section', { class: 'memory card', 'aria-label': 'Memory' },
      h('div', {}, h('h2', {}, 'System memory'), sysGauge.el, sysText),
      h('div', {}, h('h2', {}, 'Model budget'), budgetGauge.el, budgetText)),
    h('section', { 'aria-labelledby': 'running-h' }, h('h2', { id: 'running-h' }, 'Loaded models'), runningEmpty, running, loader.el),
    h('section', { 'aria-labelledby': 'stopped-h' }, h('h2', { id: 'stopped-h' }, 'Profiles not loaded'), stoppedEmpty, stopped));

  const tiles = new Map();
  const rows = new Map();
  let timer = null;
  let stoppedPage = false;
  let reported = false;
  let lastLoaded = null;

  function sync(map, container, items, make, update) {
    const keys = new Set();
    items.forEach((s, i) => {
      const key = s.id !== null ? `p${s.id}` : `m${s.name}`;
      keys.add(key);
      let item = map.get(key);
      if (!item) {
        item = make();
        map.set(key, item);
      }
      update(item, s);
      // Keep the API's order, moving a node only when it is out of place
      // (a moved node would lose keyboard focus).
      if (container.children[i] !== item.el) container.insertBefore(item.el, container.children[i] || null);
    });
    for (const [key, item] of map) {
      if (!keys.has(key)) {
        item.el.remove();
        map.delete(key);
      }
    }
  }

  async function poll() {
    try {
      const [srv, sys] = await Promise.all([get('/api/servers'), get('/api/system/memory')]);
      reported = false;
      sysGauge.set(sys.percent, `${fmt.percent(sys.percent)} used`);
      sysText.textContent = `${sys.used_gb} GB used of ${sys.total_gb} GB (${fmt.percent(sys.percent)}), ${sys.available_gb} GB available`;
      const m = srv.memory;
      const pct = m.budget_bytes ? (m.used_bytes / m.budget_bytes) * 100 : 0;
      budgetGauge.set(pct, `${fmt.percent(pct)} of the budget`);
      budgetText.textContent = `${fmt.bytes(m.used_bytes)} of ${fmt.bytes(m.budget_bytes)} (${m.memory_limit_percent}% of RAM) · ${m.loaded_models} of ${m.max_loaded_models} models loaded · CPU ${fmt.percent(srv.cpu_percent)}`;
      const live = srv.servers.filter((s) => s.state !== 'stopped');
      const idle = srv.servers.filter((s) => s.state === 'stopped');
      sync(tiles, running, live, makeTile, (tile, s) => tile.update(s));
      const loaded = live.map((s) => s.name).join('\n');
      if (loaded !== lastLoaded) loader.refresh(); // the list offers unloaded models only
      lastLoaded = loaded;
      sync(rows, stopped, idle, makeStopped, (row, s) => row.update(s));
      runningEmpty.hidden = live.length > 0;
      stoppedEmpty.hidden = idle.length > 0;
    } catch (err) {
      if (!reported) toastError(err);
      reported = true;
    }
    if (!stoppedPage) timer = setTimeout(poll, POLL_MS);
  }
  poll();
  return () => {
    stoppedPage = true;
    clearTimeout(timer);
  };
}
