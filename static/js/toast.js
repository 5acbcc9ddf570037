// toast.js - short notices in the corner: errors stay until dismissed,
// the rest fade after a few seconds.
import { h } from './dom.js';

export function toast(message, kind = 'info') {
  const box = document.getElementById('toasts');
  const close = h('button', { class: 'toast-close', 'aria-label': 'Dismiss notice' }, '×');
  const el = h('div', { class: `toast toast-${kind}`, role: kind === 'error' ? 'alert' : null },
    h('span', { class: 'toast-text' }, message), close);
  close.addEventListener('click', () => el.remove());
  box.append(el);
  if (kind !== 'error') setTimeout(() => el.remove(), 4000);
}

export function toastError(err) {
  toast(err && err.message ? err.message : String(err), 'error');
}
