// pages/profiles.js - the profile list (edit, duplicate, delete) and the
// create/edit form.  Routes: #/profiles, #/profiles/new[?model=ID],
// #/profiles/{id}.  The daemon validates; its 422/409 errors are shown
// next to the field named in error.param.
import { get, post, put, del } from '../api.js';
import { h, clear, emptyState } from '../dom.js';
import { confirmAction, promptText } from '../dialog.js';
import { makeField, showFieldError } from '../form.js';
import { BASIC, ADVANCED } from '../profile_fields.js';
import { toast, toastError } from '../toast.js';

export function mount(main, route) {
  const [sub] = route.parts;
  if (sub === 'new') renderForm(main, null, route.query.get('model'));
  else if (sub) renderForm(main, Number(sub));
  else renderList(main);
}

async function renderList(main) {
  const list = h('ul', { class: 'rows', 'aria-label': 'Profiles' });
  clear(main,
    h('div', { class: 'page-head' }, h('h1', {}, 'Profiles'), h('a', { class: 'button primary', href: '#/profiles/new' }, 'New profile')),
    h('p', { class: 'muted' }, 'A profile is a model plus its serving defaults. Clients use it by sending its name as the model.'),
    list);
  let profiles;
  try {
    profiles = await get('/api/profiles');
  } catch (err) {
    toastError(err);
    return;
  }
  if (!profiles.length) {
    clear(list, h('li', {}, emptyState('No profiles yet.', 'Create one, or pick a local model on the Models page and press "Use in profile".')));
    return;
  }
  clear(list, profiles.map((p) => profileRow(p, main)));
}

function profileRow(p, main) {
  const edit = h('a', { class: 'button', href: `#/profiles/${p.id}`, 'aria-label': `Edit ${p.name}` }, 'Edit');
  const dup = h('button', { type: 'button', 'aria-label': `Duplicate ${p.name}` }, 'Duplicate');
  const remove = h('button', { type: 'button', class: 'danger', 'aria-label': `Delete ${p.name}` }, 'Delete');
  dup.addEventListener('click', async () => {
    const name = await promptText('Duplicate profile', 'Name of the copy', `${p.name} copy`);
    if (name === null) return;
    try {
      await post(`/api/profiles/${p.id}/duplicate`, { new_name: name });
      toast(`Created ${name}`);
      renderList(main);
    } catch (err) {
      toastError(err);
    }
  });
  remove.addEventListener('click', async () => {
    if (!(await confirmAction('Delete profile', `Delete the profile ${p.name}? The model files stay on disk.`))) return;
    try {
      await del(`/api/profiles/${p.id}`);
      toast(`Deleted ${p.name}`);
      renderList(main);
    } catch (err) {
      toastError(err);
    }
  });
  const facts = [p.model_path, p.context_length ? `${p.context_length} tokens` : null,
    p.temperature !== null ? `temperature ${p.temperature}` : null, p.auto_start ? 'auto start' : null];
  return h('li', { class: 'row' },
    h('div', { class: 'row-main' }, h('span', { class: 'row-title' }, p.name), h('span', { class: 'muted' }, facts.filter(Boolean).join(' · ')),
      p.description ? h('span', {}, p.description) : null),
    h('div', { class: 'actions' }, edit, dup, remove));
}

async function renderForm(main, id, model) {
  const basic = BASIC.map(makeField);
  const advanced = ADVANCED.map(makeField);
  const fields = [...basic, ...advanced];
  const byName = Object.fromEntries(fields.map((f) => [f.spec.name, f]));
  const save = h('button', { type: 'submit', class: 'primary' }, id ? 'Save' : 'Create profile');
  const models = h('datalist', { id: 'model-choices' });
  byName.model_path.input.setAttribute('list', 'model-choices');
  const form = h('form', { class: 'profile-form card', novalidate: true },
    h('div', { class: 'grid basic' }, basic.map((f) => f.el)),
    h('details', { class: 'advanced' }, h('summary', {}, 'Advanced: limits, sampling, parsers, port'),
      h('div', { class: 'grid' }, advanced.map((f) => f.el))),
    models,
    h('div', { class: 'actions' }, h('a', { class: 'button', href: '#/profiles' }, 'Cancel'), save));
  clear(main, h('h1', {}, id ? 'Edit profile' : 'New profile'), form);

  for (const f of fields) if (f.spec.default !== undefined) f.set(f.spec.default);
  if (model) byName.model_path.set(model);
  get('/api/models/local').then((r) => {
    clear(models, r.data.filter((m) => m.supported).map((m) => h('option', { value: m.id })));
  }).catch(() => { /* suggestions only */ });

  let original = null;
  if (id) {
    try {
      original = await get(`/api/profiles/${id}`);
    } catch (err) {
      toastError(err);
      clear(main, h('h1', {}, 'Edit profile'), emptyState('This profile does not exist.', null), h('a', { href: '#/profiles' }, 'Back to profiles'));
      return;
    }
    for (const f of fields) f.set(original[f.spec.name]);
  }
  byName.name.input.focus();

  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    const body = {};
    for (const f of fields) {
      f.setError('');
      try {
        const v = f.get();
        if (v !== undefined) body[f.spec.name] = v;
      } catch (err) {
        showFieldError(fields, { param: f.spec.name, message: err.message });
        return;
      }
    }
    save.disabled = true;
    try {
      const saved = id ? await put(`/api/profiles/${id}`, body) : await post('/api/profiles', body);
      toast(`Saved ${saved.name}`);
      location.hash = '#/profiles';
    } catch (err) {
      if (!showFieldError(fields, err)) toastError(err);
    } finally {
      save.disabled = false;
    }
  });
}
