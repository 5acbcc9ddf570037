// app.js - hash routing between the pages and the daemon health badge.
// Each page module exports mount(main, route) and returns a cleanup
// function that stops its timers and streams.
import { get } from './api.js';
import { h, clear } from './dom.js';
import * as servers from './pages/servers.js';
import * as models from './pages/models.js';
import * as profiles from './pages/profiles.js';
import * as chat from './pages/chat.js';
import * as logs from './pages/logs.js';
import * as settings from './pages/settings.js';

const PAGES = { servers, models, profiles, chat, logs, settings };
const TITLES = {
  servers: 'Servers', models: 'Models', profiles: 'Profiles', chat: 'Chat', logs: 'Logs', settings: 'Settings',
};
const HEALTH_MS = 5000;

let cleanup = null;

// "#/profiles/new?model=org/name" -> {page: 'profiles', parts: ['new'], query}
function parseRoute(hash) {
  const [path, qs] = hash.replace(/^#\/?/, '').split('?');
  const [page, ...parts] = path.split('/').filter(Boolean);
  return { page: PAGES[page] ? page : 'servers', parts, query: new URLSearchParams(qs || '') };
}

function show() {
  const route = parseRoute(location.hash);
  if (cleanup) cleanup();
  cleanup = null;
  const main = document.getElementById('main');
  clear(main);
  document.title = `${TITLES[route.page]} · MLX Manager`;
  for (const a of document.querySelectorAll('.nav a')) {
    if (a.dataset.page === route.page) a.setAttribute('aria-current', 'page');
    else a.removeAttribute('aria-current');
  }
  try {
    cleanup = PAGES[route.page].mount(main, route) || null;
  } catch (err) {
    clear(main, h('p', { class: 'empty', role: 'alert' }, `This page failed to load: ${err.message}`));
  }
}

async function checkHealth() {
  const box = document.getElementById('health');
  const text = box.querySelector('.health-text');
  try {
    const hl = await get('/api/health');
    box.dataset.state = 'ok';
    text.textContent = `Daemon ${hl.status} · v${hl.version}`;
  } catch {
    box.dataset.state = 'down';
    text.textContent = 'Daemon unreachable';
  }
}

window.addEventListener('hashchange', () => {
  show();
  document.getElementById('main').focus({ preventScroll: true });
});
show();
checkHealth();
setInterval(checkHealth, HEALTH_MS);
