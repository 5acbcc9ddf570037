// pages/settings.js - daemon settings (/api/settings), API keys
// (/api/keys: the secret is shown once, at creation) and the key this
// browser tab sends to /v1 and /admin.
import { get, put, post, del, savedKey, saveKey } from '../api.js';
import { h, clear, emptyState, uid } from '../dom.js';
import { confirmAction } from '../dialog.js';
import { makeField, showFieldError } from '../form.js';
import { toast, toastError } from '../toast.js';

const SETTINGS = [
  { name: 'memory_limit_percent', type: 'int', label: 'Memory limit (% of RAM)', min: 10, max: 100, help: 'Budget for loaded models: weights, KV cache and scratch.' },
  { name: 'max_loaded_models', type: 'int', label: 'Max loaded models', min: 1, max: 64 },
  { name: 'idle_unload_seconds', type: 'int', label: 'Unload idle models after (s)', min: 0, max: 604800, help: '0 = never.' },
  { name: 'models_dir', type: 'text', label: 'Models folder', help: 'A Hugging Face cache folder (absolute path); downloads go here.' },
  { name: 'hf_endpoint', type: 'text', label: 'Hub endpoint', help: 'Hugging Face Hub or a mirror (http:// or https://).' },
  { name: 'hf_token', type: 'password', label: 'Hub access token', help: 'Never shown back: leave empty to keep the current one.' },
  { name: 'log_level', type: 'choice', label: 'Log level', choices: ['debug', 'info', 'warn', 'error'], default: 'info' },
];

export function mount(main) {
  const settingsBox = h('section', { class: 'card', 'aria-labelledby': 'set-h' }, h('h2', { id: 'set-h' }, 'Daemon settings'));
  const keysBox = h('section', { class: 'card', 'aria-labelledby': 'keys-h' }, h('h2', { id: 'keys-h' }, 'API keys'));
  const mineBox = h('section', { class: 'card', 'aria-labelledby': 'mine-h' }, h('h2', { id: 'mine-h' }, 'This browser\'s key'));
  clear(main, h('h1', {}, 'Settings'), settingsBox, keysBox, mineBox);
  renderSettings(settingsBox);
  renderKeys(keysBox);
  renderMine(mineBox);
}

async function renderSettings(box) {
  const fields = SETTINGS.map(makeField);
  const save = h('button', { type: 'submit', class: 'primary' }, 'Save settings');
  const form = h('form', { novalidate: true, class: 'grid' }, fields.map((f) => f.el), h('div', { class: 'actions' }, save));
  box.append(form);
  let current;
  const load = async () => {
    current = await get('/api/settings');
    for (const f of fields) {
      if (f.spec.type === 'password') {
        f.set('');
        f.input.placeholder = current.hf_token ? `set (${current.hf_token})` : 'not set';
      } else {
        f.set(current[f.spec.name]);
      }
    }
  };
  try {
    await load();
  } catch (err) {
    toastError(err);
    return;
  }
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    const patch = {};
    for (const f of fields) {
      f.setError('');
      let v;
      try {
        v = f.get();
      } catch (err) {
        showFieldError(fields, { param: f.spec.name, message: err.message });
        return;
      }
      if (v === undefined || v === null || v === current[f.spec.name]) continue;
      patch[f.spec.name] = v;
    }
    if (!Object.keys(patch).length) {
      toast('Nothing changed');
      return;
    }
    save.disabled = true;
    try {
      await put('/api/settings', patch);
      await load();
      toast('Settings saved');
    } catch (err) {
      if (!showFieldError(fields, err)) toastError(err);
    } finally {
      save.disabled = false;
    }
  });
}

async function renderKeys(box) {
  const note = h('p', { class: 'muted' },
    'While no key exists, /v1 and /admin are open to anyone who can reach this server. Once one exists, they need a key with the right scope (Authorization: Bearer KEY). The dashboard\'s own /api stays open.');
  const name = h('input', { id: uid('k'), required: true, autocomplete: 'off', maxlength: 128 });
  const inference = h('input', { type: 'checkbox', id: uid('k'), checked: true });
  const admin = h('input', { type: 'checkbox', id: uid('k') });
  const nameErr = h('p', { class: 'field-error', id: uid('k'), hidden: true });
  name.setAttribute('aria-describedby', nameErr.id);
  const create = h('button', { type: 'submit', class: 'primary' }, 'Create key');
  const reveal = h('div', { class: 'reveal', hidden: true, role: 'status' });
  const list = h('ul', { class: 'rows', 'aria-label': 'API keys' });
  const form = h('form', { class: 'inline-form', novalidate: true },
    h('div', { class: 'field' }, h('label', { for: name.id }, 'Key name'), name, nameErr),
    h('fieldset', { class: 'checks' }, h('legend', {}, 'Scopes'),
      h('div', { class: 'check' }, inference, h('label', { for: inference.id }, 'inference (/v1)')),
      h('div', { class: 'check' }, admin, h('label', { for: admin.id }, 'admin (/admin)'))),
    h('div', { class: 'field field-button' }, create));
  box.append(note, form, reveal, list);

  const refresh = async () => {
    try {
      const keys = (await get('/api/keys')).filter((k) => !k.revoked_at);
      clear(list, keys.length ? keys.map(keyRow) : h('li', {}, emptyState('No API keys.', '/v1 and /admin are open.')));
    } catch (err) {
      toastError(err);
    }
  };
  const keyRow = (k) => {
    const revoke = h('button', { type: 'button', class: 'danger', 'aria-label': `Revoke ${k.name}` }, 'Revoke');
    revoke.addEventListener('click', async () => {
      if (!(await confirmAction('Revoke key', `Revoke the key ${k.name} (${k.prefix}…)? Clients using it get 401 from then on.`, 'Revoke'))) return;
      try {
        await del(`/api/keys/${k.id}`);
        toast(`Revoked ${k.name}`);
        refresh();
      } catch (err) {
        toastError(err);
      }
    });
    return h('li', { class: 'row' },
      h('div', { class: 'row-main' }, h('span', { class: 'row-title' }, k.name, ' ', h('code', {}, `${k.prefix}…`)),
        h('span', { class: 'muted' }, `${k.scopes.join(', ')} · ${k.requests} requests · ${k.completion_tokens} tokens · last used ${k.last_used_at || 'never'}`)),
      h('div', { class: 'actions' }, revoke));
  };

  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    nameErr.hidden = true;
    name.removeAttribute('aria-invalid');
    const scopes = [inference.checked ? 'inference' : null, admin.checked ? 'admin' : null].filter(Boolean);
    create.disabled = true;
    try {
      const k = await post('/api/keys', { name: name.value, scopes });
      const copy = h('button', { type: 'button' }, 'Copy');
      const code = h('code', { class: 'secret' }, k.key);
      copy.addEventListener('click', async () => {
        try {
          await navigator.clipboard.writeText(k.key);
          toast('Copied');
        } catch {
          toast('Copy failed: select the key and copy it by hand', 'error');
        }
      });
      clear(reveal, h('p', {}, h('strong', {}, `Key ${k.name} created. `), 'Copy it now: it is not shown again.'), code, ' ', copy);
      reveal.hidden = false;
      name.value = '';
      refresh();
    } catch (err) {
      if (err.param === 'name') {
        nameErr.textContent = err.message;
        nameErr.hidden = false;
        name.setAttribute('aria-invalid', 'true');
        name.focus();
      } else {
        toastError(err);
      }
    } finally {
      create.disabled = false;
    }
  });
  refresh();
}

function renderMine(box) {
  const input = h('input', { type: 'password', id: uid('k'), autocomplete: 'off', placeholder: savedKey() ? 'saved for this tab' : 'mlxm-…' });
  const save = h('button', { type: 'submit' }, 'Use this key');
  const forget = h('button', { type: 'button' }, 'Forget');
  const form = h('form', { class: 'inline-form' },
    h('div', { class: 'field' }, h('label', { for: input.id }, 'Key sent by the dashboard to /v1 and /admin'), input,
      h('p', { class: 'hint' }, 'Once API keys exist, Chat needs a key with the inference scope, and loading or unloading a model by name on the Servers page one with admin. Kept in this tab only (sessionStorage).')),
    h('div', { class: 'field field-button' }, h('div', { class: 'actions' }, save, forget)));
  box.append(form);
  form.addEventListener('submit', (e) => {
    e.preventDefault();
    if (!input.value) return;
    saveKey(input.value.trim());
    input.value = '';
    input.placeholder = 'saved for this tab';
    toast('Key saved for this tab');
  });
  forget.addEventListener('click', () => {
    saveKey('');
    input.placeholder = 'mlxm-…';
    toast('Key forgotten');
  });
}
