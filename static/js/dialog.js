// dialog.js - modal confirm and prompt on <dialog> (focus is trapped and
// Escape cancels), instead of window.confirm/prompt.
import { h } from './dom.js';

function open(content, onSubmit) {
  return new Promise((resolve) => {
    const dlg = h('dialog', { class: 'dialog', 'aria-labelledby': 'dialog-title' });
    const form = h('form', { method: 'dialog' }, content);
    dlg.append(form);
    document.body.append(dlg);
    let result = null;
    form.addEventListener('submit', (e) => {
      if (e.submitter && e.submitter.value === 'cancel') return;
      result = onSubmit(form);
    });
    dlg.addEventListener('close', () => {
      dlg.remove();
      resolve(result);
    });
    dlg.showModal();
  });
}

// Resolves true when the user confirms.
export async function confirmAction(title, message, confirmLabel = 'Delete') {
  const r = await open([
    h('h2', { id: 'dialog-title' }, title),
    h('p', {}, message),
    h('div', { class: 'actions' },
      h('button', { value: 'cancel', type: 'submit', formnovalidate: true }, 'Cancel'),
      h('button', { value: 'ok', type: 'submit', class: 'danger' }, confirmLabel)),
  ], () => true);
  return r === true;
}

// Resolves the entered text, or null when cancelled.
export function promptText(title, label, initial = '') {
  const input = h('input', { id: 'dialog-input', name: 'value', required: true, value: initial });
  return open([
    h('h2', { id: 'dialog-title' }, title),
    h('label', { for: 'dialog-input' }, label),
    input,
    h('div', { class: 'actions' },
      h('button', { value: 'cancel', type: 'submit', formnovalidate: true }, 'Cancel'),
      h('button', { value: 'ok', type: 'submit', class: 'primary' }, 'OK')),
  ], (form) => form.elements.value.value);
}
