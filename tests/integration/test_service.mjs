// test_service.mjs - systemd user units from `mlx-manager service` and
// /api/system/service: generation with absolute paths, systemd-analyze
// verify, and the clear error where no systemd user manager runs (this
// container; where one does run, install is left alone: tests do not touch
// the user's services).
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { spawnSync } from 'node:child_process';
import { check, finish, startServer, request, binPath, sanitizerReports } from './lib.mjs';

const xdg = fs.mkdtempSync(path.join(os.tmpdir(), 'mlxm-xdg-'));
const env = { ...process.env, XDG_CONFIG_HOME: xdg };
const svc = (...args) => spawnSync(binPath(), ['service', ...args], { encoding: 'utf8', env, timeout: 60000 });
const haveAnalyze = spawnSync('systemd-analyze', ['--version']).status === 0;

const srv = await startServer('');
try {
  const runDir = srv.runDir;
  let r = svc('--run-dir', runDir, '--state-dir', srv.stateDir, 'print');
  check('service print shows both units', r.status === 0 && r.stdout.includes('### mlx-manager.service') &&
    r.stdout.includes('### mlx-manager-nginx.service'), r.stderr);
  check('the daemon unit runs this binary with absolute paths',
    r.stdout.includes(`ExecStart=${fs.realpathSync(binPath())} serve --listen ${runDir}/mlx-manager.sock --state-dir ${srv.stateDir}`), r.stdout);
  check('the nginx unit uses the generated nginx.conf and binds to the daemon',
    r.stdout.includes(`-c ${runDir}/nginx.conf`) && r.stdout.includes('BindsTo=mlx-manager.service') && r.stdout.includes('Type=forking'), r.stdout);
  r = svc('--run-dir', '/tmp/has space', 'print');
  check('a path a unit file cannot carry is refused clearly', r.status === 1 && r.stderr.includes('cannot carry'), r.stderr);

  r = svc('--run-dir', runDir, '--state-dir', srv.stateDir, 'verify');
  if (haveAnalyze) check('systemd-analyze verify passes both units', r.status === 0 && r.stdout.includes('ok'), r.stdout + r.stderr);
  else check('verify says systemd-analyze is missing', r.status === 1 && r.stderr.includes('not installed'), r.stderr);

  r = svc('status');
  const st = JSON.parse(r.stdout || '{}');
  const available = st.systemd && st.systemd.available;
  check('service status reports the units and the unit directory',
    st.unit_dir === path.join(xdg, 'systemd/user') && st.units.length === 2 && st.units.every((u) => u.installed === false), r.stdout);
  if (!available) {
    check('status exits 3 and says why systemd is unavailable', r.status === 3 && /systemd/.test(st.systemd.reason), st);
    r = svc('--run-dir', runDir, 'install');
    check('install fails with a clear error', r.status === 1 && /systemd (user manager|is not installed)/.test(r.stderr), r.stderr);
    check('and writes no unit files', !fs.existsSync(path.join(xdg, 'systemd/user/mlx-manager.service')));
    r = svc('uninstall');
    check('uninstall fails the same way', r.status === 1 && /systemd/.test(r.stderr), r.stderr);
  }

  // The API (the daemon's own environment: its HOME's unit directory).
  r = await request(srv.url, 'GET', '/api/system/service');
  const files = r.json && r.json.unit_files;
  check('GET /api/system/service: status and the units as this daemon would install them',
    r.status === 200 && typeof r.json.systemd.available === 'boolean' && files &&
    files['mlx-manager.service'].includes(`--listen ${runDir}/mlx-manager.sock`) &&
    files['mlx-manager.service'].includes('--config ') &&
    files['mlx-manager-nginx.service'].includes(`${runDir}/nginx.conf`), r.text.slice(0, 600));
  r = await request(srv.url, 'POST', '/api/system/service', { action: 'reboot' });
  check('POST with an unknown action: 422', r.status === 422 && r.json.error.param === 'action', r.text);
  r = await request(srv.url, 'POST', '/api/system/service', { action: 'install', start: 'yes' });
  check('POST with a non-boolean start: 422', r.status === 422 && r.json.error.param === 'start', r.text);
  if (!available) {
    r = await request(srv.url, 'POST', '/api/system/service', { action: 'install' });
    check('POST install without systemd: 503 with the reason', r.status === 503 && r.json.error.code === 'systemd_unavailable' &&
      /systemd/.test(r.json.error.message), r.text);
  }
} catch (e) {
  check('no exception', false, e.stack);
} finally {
  srv.stop();
  check('no sanitizer reports', sanitizerReports(srv.runDir).length === 0, sanitizerReports(srv.runDir).slice(0, 5));
  fs.rmSync(srv.runDir, { recursive: true, force: true });
  fs.rmSync(xdg, { recursive: true, force: true });
  finish();
}
