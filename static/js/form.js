// form.js - labelled inputs with an error slot each, and showing the
// API's field errors (error.param) next to the field they name.
import { h, uid } from './dom.js';

// spec: {name, type: text|textarea|int|real|bool|choice|password, label,
// help, min, max, choices, nullable, required, stored}
export function makeField(spec) {
  const id = uid(spec.name);
  const errId = `${id}-err`;
  const helpId = `${id}-help`;
  let input;
  if (spec.type === 'textarea') {
    input = h('textarea', { rows: 3 });
  } else if (spec.type === 'bool') {
    input = h('input', { type: 'checkbox' });
  } else if (spec.type === 'choice') {
    input = h('select', {},
      spec.nullable || spec.default === undefined ? h('option', { value: '' }, spec.nullable ? 'none' : 'default') : null,
      spec.choices.map((c) => h('option', { value: c }, c)));
  } else {
    const numeric = spec.type === 'int' || spec.type === 'real';
    input = h('input', {
      type: numeric ? 'number' : spec.type === 'password' ? 'password' : 'text',
      step: spec.type === 'real' ? 'any' : numeric ? '1' : undefined,
      min: numeric ? spec.min : undefined,
      max: numeric ? spec.max : undefined,
      autocomplete: 'off',
    });
  }
  input.id = id;
  input.name = spec.name;
  if (spec.required) input.setAttribute('aria-required', 'true');
  const range = spec.type === 'int' || spec.type === 'real' ? `${spec.min} to ${spec.max}` : null;
  const helpText = [spec.help, range, spec.stored ? 'saved with the profile, not used by the daemon yet' : null]
    .filter(Boolean).join(' · ');
  const help = helpText ? h('p', { class: 'hint', id: helpId }, helpText) : null;
  const error = h('p', { class: 'field-error', id: errId, hidden: true });
  input.setAttribute('aria-describedby', [help ? helpId : null, errId].filter(Boolean).join(' '));
  const label = h('label', { for: id }, spec.label, spec.required ? h('span', { 'aria-hidden': 'true' }, ' *') : null);
  const el = spec.type === 'bool'
    ? h('div', { class: 'field check' }, input, label, help, error)
    : h('div', { class: 'field' }, label, input, help, error);
  return {
    spec, el, input,
    setError(message) {
      error.textContent = message || '';
      error.hidden = !message;
      if (message) input.setAttribute('aria-invalid', 'true');
      else input.removeAttribute('aria-invalid');
    },
    set(value) {
      if (spec.type === 'bool') input.checked = !!value;
      else input.value = value === null || value === undefined ? '' : String(value);
    },
    // The JSON value, or undefined to leave the field out of the body.
    // Throws Error(message) for a number the browser could not parse.
    get() {
      if (spec.type === 'bool') return input.checked;
      if (input.validity && input.validity.badInput) throw new Error(`${spec.label} must be a number`);
      const raw = input.value;
      if (raw.trim() === '') return spec.nullable ? null : spec.type === 'textarea' ? '' : undefined;
      if (spec.type === 'int' || spec.type === 'real') return Number(raw);
      return raw;
    },
  };
}

// Shows err (an ApiError) next to its field; returns false when no field
// of `fields` matches err.param (the caller then shows a toast).
export function showFieldError(fields, err) {
  for (const f of fields) f.setError('');
  const f = err && err.param ? fields.find((x) => x.spec.name === err.param) : null;
  if (!f) return false;
  f.setError(err.message);
  const details = f.el.closest('details');
  if (details) details.open = true;
  f.input.focus();
  return true;
}
