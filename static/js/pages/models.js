// pages/models.js - search the hub, download with live progress, and the
// models already on disk.  Downloads in progress are listed from the
// daemon on every visit and their progress streams are reattached, so a
// reload never loses them.
import { get, post, del } from '../api.js';
import { h, clear, emptyState, uid } from '../dom.js';
import { confirmAction } from '../dialog.js';
import * as fmt from '../format.js';
import { stream } from '../sse.js';
import { toast, toastError } from '../toast.js';

const FINAL = new Set(['completed', 'failed', 'cancelled']);
const RECENT_FINISHED = 5;
const REATTACH_MS = 2000;

function field(label, input, hint) {
  const id = input.id || uid('m');
  input.id = id;
  return h('div', { class: 'field' }, h('label', { for: id }, label), input, hint ? h('p', { class: 'hint' }, hint) : null);
}

function check(label, input) {
  input.id = input.id || uid('m');
  return h('div', { class: 'check' }, input, h('label', { for: input.id }, label));
}

function quantText(q) {
  if (!q) return 'not quantized';
  return `${q.bits}-bit${q.group_size ? `, group ${q.group_size}` : ''}`;
}

export function mount(main) {
  const state = { tasks: new Map(), active: new Set(), stopped: false, timers: new Set() };

  // ---- search --------------------------------------------------------------
  const query = h('input', { type: 'search', name: 'query', placeholder: 'e.g. qwen 4bit', autocomplete: 'off' });
  const sort = h('select', { name: 'sort' },
    h('option', { value: 'downloads' }, 'Most downloaded'),
    h('option', { value: 'likes' }, 'Most liked'),
    h('option', { value: 'lastModified' }, 'Recently updated'));
  const fits = h('input', { type: 'checkbox', name: 'fits' });
  const downloadedOnly = h('input', { type: 'checkbox', name: 'downloaded' });
  const searchBtn = h('button', { type: 'submit', class: 'primary' }, 'Search');
  const results = h('div', { class: 'cards', 'aria-live': 'polite', 'aria-busy': 'false' });
  const resultsNote = h('p', { class: 'muted' });
  const form = h('form', { class: 'search', role: 'search', 'aria-label': 'Search the model hub' },
    field('Search the hub', query),
    field('Sort by', sort),
    h('div', { class: 'checks' },
      check('Fits in memory', fits),
      check('Downloaded only', downloadedOnly)),
    h('div', { class: 'field field-button' }, searchBtn));
  form.addEventListener('submit', (e) => {
    e.preventDefault();
    search();
  });
  fits.addEventListener('change', () => search());
  downloadedOnly.addEventListener('change', () => renderResults());

  // ---- downloads and local models ------------------------------------------
  const downloads = h('ul', { class: 'rows', 'aria-label': 'Downloads' });
  const downloadsEmpty = emptyState('No downloads yet.', 'Search the hub above and press Download.');
  const local = h('ul', { class: 'rows', 'aria-label': 'Local models' });
  const localNote = h('p', { class: 'muted' });

  clear(main,
    h('h1', {}, 'Models'),
    h('section', { class: 'card', 'aria-labelledby': 'search-h' }, h('h2', { id: 'search-h' }, 'Hub search'), form, resultsNote, results),
    h('section', { 'aria-labelledby': 'dl-h' }, h('h2', { id: 'dl-h' }, 'Downloads'), downloadsEmpty, downloads),
    h('section', { 'aria-labelledby': 'local-h' }, h('h2', { id: 'local-h' }, 'Local models'), localNote, local));

  let lastResults = [];
  let budget = 0;
  let searchSeq = 0; // only the latest search's answer is shown

  async function search() {
    const params = new URLSearchParams({ sort: sort.value, limit: '30' });
    if (query.value.trim()) params.set('query', query.value.trim());
    if (fits.checked) params.set('fits_memory', 'true');
    const seq = ++searchSeq;
    searchBtn.disabled = true;
    results.setAttribute('aria-busy', 'true');
    try {
      const r = await get(`/api/models/search?${params}`);
      if (seq !== searchSeq) return;
      lastResults = r.data;
      budget = r.memory_budget_bytes;
      renderResults();
    } catch (err) {
      toastError(err);
    } finally {
      searchBtn.disabled = false;
      results.setAttribute('aria-busy', 'false');
    }
  }

  function downloading(modelId) {
    for (const t of state.tasks.values()) if (t.model_id === modelId && !FINAL.has(t.status)) return true;
    return false;
  }

  // "Downloaded only" filters the last answer here: the search API has no
  // such parameter.
  function renderResults() {
    const shown = downloadedOnly.checked ? lastResults.filter((m) => m.is_downloaded) : lastResults;
    resultsNote.textContent = budget ? `${shown.length} result(s). Memory budget for models: ${fmt.bytes(budget)}.` : '';
    if (!shown.length) {
      clear(results, emptyState('No models match.', 'Try other words, or clear the filters.'));
      return;
    }
    clear(results, shown.map(resultCard));
  }

  function resultCard(m) {
    const btn = h('button', { type: 'button', class: 'primary' }, m.is_downloaded ? 'Downloaded' : 'Download');
    btn.setAttribute('aria-label', `Download ${m.model_id}`);
    btn.disabled = m.is_downloaded || downloading(m.model_id);
    btn.addEventListener('click', () => startDownload(m.model_id, btn));
    const size = m.estimated_size_bytes === null
      ? 'size unknown'
      : `${fmt.bytes(m.weights_bytes)} weights + ${fmt.bytes(m.kv_bytes)} KV (${m.kv_context} tokens)`;
    return h('article', { class: 'card result' },
      h('header', { class: 'tile-head' },
        h('h3', { class: 'tile-title' }, m.model_id),
        h('span', { class: 'badges' },
          m.is_downloaded ? h('span', { class: 'badge', 'data-state': 'ready' }, 'downloaded') : null,
          m.fits_in_memory === false ? h('span', { class: 'badge', 'data-state': 'failed' }, 'too big') : null,
          m.fits_in_memory ? h('span', { class: 'badge' }, 'fits') : null)),
      h('p', { class: 'muted' }, `by ${m.author}`),
      h('dl', { class: 'stats' },
        h('div', { class: 'stat' }, h('dt', {}, 'Downloads'), h('dd', {}, fmt.count(m.downloads))),
        h('div', { class: 'stat' }, h('dt', {}, 'Likes'), h('dd', {}, fmt.count(m.likes))),
        h('div', { class: 'stat' }, h('dt', {}, 'Size'), h('dd', {}, size)),
        h('div', { class: 'stat' }, h('dt', {}, 'Quantization'), h('dd', {}, quantText(m.quantization)))),
      m.tags.length ? h('ul', { class: 'tags', 'aria-label': 'Tags' }, m.tags.slice(0, 8).map((t) => h('li', {}, t))) : null,
      h('div', { class: 'actions' }, btn));
  }

  async function startDownload(modelId, btn) {
    btn.disabled = true;
    try {
      const t = await post('/api/models/download', { model_id: modelId });
      t.id = t.task_id;
      toast(`Downloading ${modelId}`);
      showTask(t);
    } catch (err) {
      btn.disabled = false;
      toastError(err);
    }
  }

  // ---- download rows -------------------------------------------------------
  function taskRow(t) {
    const bar = h('progress', { max: 100, value: 0, 'aria-label': `Download progress of ${t.model_id}` });
    const status = h('span', { class: 'badge' });
    const detail = h('span', { class: 'muted dl-detail' });
    const pct = h('span', { class: 'dl-percent' });
    const pause = h('button', { type: 'button' }, 'Pause');
    const resume = h('button', { type: 'button' }, 'Resume');
    const cancel = h('button', { type: 'button', class: 'danger' }, 'Cancel');
    const control = (action, button) => async () => {
      button.disabled = true;
      try {
        const next = await post(`/api/models/download/${encodeURIComponent(t.id)}/${action}`, {});
        showTask(next);
      } catch (err) {
        toastError(err);
      } finally {
        button.disabled = false;
      }
    };
    pause.addEventListener('click', control('pause', pause));
    resume.addEventListener('click', control('resume', resume));
    cancel.addEventListener('click', control('cancel', cancel));
    const el = h('li', { class: 'row download', dataset: { task: t.id } },
      h('div', { class: 'row-main' },
        h('span', { class: 'row-title' }, t.model_id, ' ', status),
        h('div', { class: 'progress-line' }, bar, pct),
        detail),
      h('div', { class: 'actions' }, pause, resume, cancel));
    return {
      el,
      update(x) {
        bar.value = x.percent || 0;
        pct.textContent = fmt.percent(x.percent || 0);
        status.textContent = x.status;
        status.dataset.state = x.status;
        const parts = [`${fmt.bytes(x.bytes_done)} of ${fmt.bytes(x.bytes_total)}`];
        if (x.status === 'downloading') {
          parts.push(fmt.rate(x.speed_bps));
          parts.push(x.eta_seconds === null ? 'ETA unknown' : `ETA ${fmt.duration(x.eta_seconds)}`);
        }
        if (x.current_file && !FINAL.has(x.status)) parts.push(x.current_file);
        if (x.error) parts.push(x.error);
        detail.textContent = parts.join(' · ');
        pause.hidden = FINAL.has(x.status) || x.status === 'paused';
        resume.hidden = x.status !== 'paused' && x.status !== 'failed';
        cancel.hidden = FINAL.has(x.status);
      },
    };
  }

  function showTask(t) {
    const prev = state.tasks.get(t.id);
    state.tasks.set(t.id, { ...prev, ...t });
    let row = prev && prev.row;
    if (!row) {
      row = taskRow(t);
      downloads.prepend(row.el);
    }
    state.tasks.get(t.id).row = row;
    row.update(t);
    downloadsEmpty.hidden = true;
    if (!FINAL.has(t.status) && t.status !== 'paused') attach(t.id);
    if (prev && !FINAL.has(prev.status) && FINAL.has(t.status)) finished(t);
  }

  function finished(t) {
    if (t.status === 'completed') toast(`${t.model_id} downloaded`);
    else if (t.status === 'failed') toast(`${t.model_id}: ${t.error || 'download failed'}`, 'error');
    loadLocal();
    search(); // refreshes the downloaded badges
  }

  // One progress stream per running task; it ends by itself at a final
  // status and is closed while a task is paused (it would hold a worker).
  async function attach(id) {
    if (state.active.has(id) || state.stopped) return;
    const ctl = new AbortController();
    state.active.add(id);
    state.tasks.get(id).abort = ctl;
    try {
      for await (const ev of stream(`/api/models/download/${encodeURIComponent(id)}/progress`, { signal: ctl.signal })) {
        if (ev.event !== 'progress') continue;
        const t = JSON.parse(ev.data);
        showTask(t);
        if (t.status === 'paused') {
          ctl.abort();
          break;
        }
      }
    } catch (err) {
      if (err.name !== 'AbortError' && !state.stopped) toastError(err);
    } finally {
      state.active.delete(id);
    }
    const t = state.tasks.get(id);
    if (!state.stopped && t && !FINAL.has(t.status) && t.status !== 'paused') {
      // The stream broke (daemon restart?): look again in a moment.
      const timer = setTimeout(() => {
        state.timers.delete(timer);
        refreshTasks();
      }, REATTACH_MS);
      state.timers.add(timer);
    }
  }

  async function refreshTasks() {
    try {
      const r = await get('/api/models/downloads');
      const list = r.data;
      const active = list.filter((t) => !FINAL.has(t.status));
      const done = list.filter((t) => FINAL.has(t.status)).slice(-RECENT_FINISHED);
      for (const t of [...done, ...active]) showTask(t);
      downloadsEmpty.hidden = state.tasks.size > 0;
    } catch (err) {
      toastError(err);
    }
  }

  // ---- local models --------------------------------------------------------
  async function loadLocal() {
    try {
      const r = await get('/api/models/local');
      localNote.textContent = `In ${r.models_dir}`;
      if (!r.data.length) {
        clear(local, h('li', {}, emptyState('No models on disk yet.', 'Download one from the hub above.')));
        return;
      }
      clear(local, r.data.map(localRow));
    } catch (err) {
      toastError(err);
    }
  }

  function localRow(m) {
    const c = m.config || {};
    const use = h('a', { class: 'button', href: `#/profiles/new?model=${encodeURIComponent(m.id)}` }, 'Use in profile');
    use.setAttribute('aria-label', `Use ${m.id} in a new profile`);
    const remove = h('button', { type: 'button', class: 'danger' }, 'Delete');
    remove.setAttribute('aria-label', `Delete ${m.id}`);
    remove.disabled = m.downloading;
    remove.addEventListener('click', async () => {
      if (!(await confirmAction('Delete model', `Delete ${m.id} (${fmt.bytes(m.size_bytes)}) from disk? This cannot be undone.`))) return;
      try {
        const [org, name] = m.id.split('/');
        await del(`/api/models/${encodeURIComponent(org)}/${encodeURIComponent(name)}`);
        toast(`${m.id} deleted`);
        loadLocal();
      } catch (err) {
        toastError(err);
      }
    });
    const support = m.supported
      ? h('span', { class: 'badge', 'data-state': 'ready' }, 'supported')
      : h('span', { class: 'badge', 'data-state': 'failed' }, 'not supported');
    return h('li', { class: 'row local' },
      h('div', { class: 'row-main' },
        h('span', { class: 'row-title' }, m.id, ' ', support, m.downloading ? h('span', { class: 'badge' }, 'downloading') : null),
        h('span', { class: 'muted' },
          [fmt.bytes(m.size_bytes), c.architecture || 'unknown architecture', quantText(c.quantization),
            c.context_length ? `${c.context_length} tokens context` : null].filter(Boolean).join(' · ')),
        m.supported ? null : h('span', { class: 'reason' }, m.unsupported_reason)),
      h('div', { class: 'actions' }, m.supported ? use : null, remove));
  }

  refreshTasks();
  loadLocal();
  search();
  return () => {
    state.stopped = true;
    for (const timer of state.timers) clearTimeout(timer);
    for (const t of state.tasks.values()) if (t.abort) t.abort.abort();
  };
}
