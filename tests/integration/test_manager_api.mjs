// test_manager_api.mjs - the manager API through the real nginx + daemon:
// every endpoint's happy path, 30+ bad inputs answered with the right status
// and error shape, data unharmed by bad requests, endurance (2,000
// sequential + 200 concurrent requests with fd/RSS measured), SIGHUP log
// reopening and a clean SIGTERM stop.
import fs from 'node:fs';
import path from 'node:path';
import {
  check, finish, startServer, request, procStats, isAlive, waitFor, runBin, sanitizerReports, BUILD,
} from './lib.mjs';

function isError(r, status, param) {
  const e = r.json && r.json.error;
  return r.status === status && e && typeof e.message === 'string' && e.message.length > 0 &&
    typeof e.type === 'string' && typeof e.code === 'string' &&
    (param === undefined || e.param === param);
}

const srv = await startServer('workers: 4\nmax_body_bytes: 1m\nlog_file: @RUN_DIR@/daemon.jsonl\n');
let srv2 = null;
try {
  const U = srv.url;
  const logFile = path.join(srv.runDir, 'daemon.jsonl');

  // ---- health, dashboard, system ------------------------------------------
  let r = await request(U, 'GET', '/api/health');
  check('GET /api/health', r.status === 200 && r.json.status === 'ok' && r.json.version, r.text);
  r = await request(U, 'GET', '/admin/health');
  check('GET /admin/health', r.status === 200 && r.json.status === 'ok', r.text);
  check('responses carry X-Request-Id', /^[0-9a-f]{16,64}$/.test(r.headers.get('x-request-id') || ''));
  const page = await fetch(U + '/');
  const html = await page.text();
  check('dashboard page served by nginx', page.status === 200 && html.includes('MLX Manager'));
  r = await request(U, 'GET', '/api/system/memory');
  const m = r.json || {};
  check('GET /api/system/memory', r.status === 200 && m.total_gb > 0 && m.available_gb > 0 &&
    m.used_gb >= 0 && m.percent >= 0 && m.percent <= 100 && m.budget_gb > 0 &&
    Math.abs(m.budget_gb - m.total_gb * m.memory_limit_percent / 100) < 0.05, r.text);
  r = await request(U, 'GET', '/api/system/info');
  const info = r.json || {};
  check('GET /api/system/info', r.status === 200 && info.os && info.kernel && info.cpu &&
    info.cpu.cores >= 1 && Array.isArray(info.cpu.simd) &&
    ['scalar', 'avx2', 'avx512', 'avx512bf16', 'amx'].includes(info.cpu.kernels) && info.versions &&
    info.versions.sqlite && info.versions.libcurl && info.versions['mlx-manager'], r.text);

  // ---- profiles: happy paths ------------------------------------------------
  r = await request(U, 'GET', '/api/profiles');
  check('GET /api/profiles starts empty', r.status === 200 && Array.isArray(r.json) && r.json.length === 0, r.text);
  r = await request(U, 'GET', '/api/profiles/next-port');
  check('next-port starts at 8081', r.status === 200 && r.json.port === 8081, r.text);
  r = await request(U, 'POST', '/api/profiles', {
    name: 'qwen-chat', model_path: 'mlx-community/Qwen3-0.6B-4bit', description: 'test',
    temperature: 0.7, top_p: 0.9, max_tokens: 512, system_prompt: 'Be brief.\nReally.',
    enable_auto_tool_choice: true, tool_call_parser: 'qwen3', context_length: 4096,
  });
  const p1 = r.json || {};
  check('POST /api/profiles creates (201)', r.status === 201 && p1.id > 0 && p1.port === 8081 &&
    p1.temperature === 0.7 && p1.model_type === 'lm' && p1.max_concurrency === 1 &&
    p1.enable_auto_tool_choice === true && p1.seed === null && p1.created_at, r.text);
  r = await request(U, 'POST', '/api/profiles', { name: 'llama', model_path: '/models/llama', port: 9000 });
  const p2 = r.json || {};
  check('create with explicit port', r.status === 201 && p2.port === 9000, r.text);
  const uname = 'модель 模型 🚀 café';
  r = await request(U, 'POST', '/api/profiles', { name: uname, model_path: '/m/ü' });
  const p3 = r.json || {};
  check('unicode name stored and returned exactly', r.status === 201 && p3.name === uname, r.text);
  const sqlName = "Robert'); DROP TABLE profiles;-- \" %s %n";
  r = await request(U, 'POST', '/api/profiles', { name: sqlName, model_path: "/m/'; --" });
  const p4 = r.json || {};
  check('SQL metacharacters stored literally', r.status === 201 && p4.name === sqlName, r.text);
  r = await request(U, 'GET', `/api/profiles/${p1.id}`);
  check('GET /api/profiles/{id}', r.status === 200 && r.json.name === 'qwen-chat' &&
    r.json.system_prompt === 'Be brief.\nReally.', r.text);
  r = await request(U, 'PUT', `/api/profiles/${p1.id}`, { temperature: 0.2, description: 'changed' });
  check('PUT partial update', r.status === 200 && r.json.temperature === 0.2 &&
    r.json.description === 'changed' && r.json.top_p === 0.9 && r.json.name === 'qwen-chat', r.text);
  r = await request(U, 'PUT', `/api/profiles/${p1.id}`, { ...r.json, seed: 42 });
  check('PUT with the read-only fields echoed back', r.status === 200 && r.json.seed === 42, r.text);
  r = await request(U, 'PUT', `/api/profiles/${p1.id}`, { seed: null });
  check('PUT null clears a nullable field', r.status === 200 && r.json.seed === null, r.text);
  r = await request(U, 'POST', `/api/profiles/${p1.id}/duplicate`, { new_name: 'qwen-chat copy' });
  const dup = r.json || {};
  check('duplicate (201) copies fields with a new port', r.status === 201 &&
    dup.name === 'qwen-chat copy' && dup.temperature === 0.2 && dup.port !== p1.port &&
    dup.id !== p1.id, r.text);
  r = await request(U, 'GET', '/api/profiles/next-port');
  check('next-port skips used ports', r.status === 200 && ![8081, dup.port, 9000].includes(r.json.port), r.text);
  r = await request(U, 'DELETE', `/api/profiles/${dup.id}`);
  check('DELETE (204)', r.status === 204 && r.text === '', r.text);
  r = await request(U, 'GET', `/api/profiles/${dup.id}`);
  check('deleted profile is gone (404)', isError(r, 404), r.text);

  // ---- settings -------------------------------------------------------------
  r = await request(U, 'GET', '/api/settings');
  check('GET /api/settings', r.status === 200 && r.json.memory_limit_percent === 90 &&
    typeof r.json.hf_endpoint === 'string', r.text);
  r = await request(U, 'PUT', '/api/settings', { memory_limit_percent: 50, hf_token: 'hf_supersecrettoken1234' });
  check('PUT /api/settings', r.status === 200 && r.json.memory_limit_percent === 50, r.text);
  check('hf_token never returned in full', r.json && !r.text.includes('supersecret') &&
    r.json.hf_token === '****1234', r.text);
  r = await request(U, 'GET', '/api/system/memory');
  check('memory budget follows memory_limit_percent', r.json.memory_limit_percent === 50 &&
    Math.abs(r.json.budget_gb - r.json.total_gb / 2) < 0.05, r.text);

  const before = (await request(U, 'GET', '/api/profiles')).text;
  const settingsBefore = (await request(U, 'GET', '/api/settings')).text;

  // ---- bad inputs -----------------------------------------------------------
  const bad = [
    ['malformed JSON', 'POST', '/api/profiles', '{"name":', 400],
    ['truncated JSON', 'POST', '/api/profiles', '{"name":"x","model_path":"/m"', 400],
    ['empty body', 'POST', '/api/profiles', '', 400],
    ['array body', 'POST', '/api/profiles', '[]', 400],
    ['string body', 'POST', '/api/profiles', '"x"', 400],
    ['trailing garbage', 'POST', '/api/profiles', '{"name":"x","model_path":"/m"} xyz', 400],
    ['deeply nested JSON', 'POST', '/api/profiles', '['.repeat(5000) + ']'.repeat(5000), 400],
    ['name is a number', 'POST', '/api/profiles', { name: 5, model_path: '/m' }, 422, 'name'],
    ['model_path missing', 'POST', '/api/profiles', { name: 'x' }, 422, 'model_path'],
    ['name missing', 'POST', '/api/profiles', { model_path: '/m' }, 422, 'name'],
    ['name empty', 'POST', '/api/profiles', { name: '', model_path: '/m' }, 422, 'name'],
    ['name too long', 'POST', '/api/profiles', { name: 'x'.repeat(129), model_path: '/m' }, 422, 'name'],
    ['name with control char', 'POST', '/api/profiles', { name: 'a\u0001b', model_path: '/m' }, 422, 'name'],
    ['name null', 'POST', '/api/profiles', { name: null, model_path: '/m' }, 422, 'name'],
    ['port as string', 'POST', '/api/profiles', { name: 'x', model_path: '/m', port: '8085' }, 422, 'port'],
    ['port out of range', 'POST', '/api/profiles', { name: 'x', model_path: '/m', port: 80 }, 422, 'port'],
    ['port not integer', 'POST', '/api/profiles', { name: 'x', model_path: '/m', port: 8085.5 }, 422, 'port'],
    ['temperature too high', 'POST', '/api/profiles', { name: 'x', model_path: '/m', temperature: 3 }, 422, 'temperature'],
    ['temperature as string', 'POST', '/api/profiles', { name: 'x', model_path: '/m', temperature: 'hot' }, 422, 'temperature'],
    ['top_p negative', 'POST', '/api/profiles', { name: 'x', model_path: '/m', top_p: -0.1 }, 422, 'top_p'],
    ['unknown model_type', 'POST', '/api/profiles', { name: 'x', model_path: '/m', model_type: 'llm' }, 422, 'model_type'],
    ['unknown field', 'POST', '/api/profiles', { name: 'x', model_path: '/m', colour: 'red' }, 422, 'colour'],
    ['bool given as 1', 'POST', '/api/profiles', { name: 'x', model_path: '/m', auto_start: 1 }, 422, 'auto_start'],
    ['keep_alive below -1', 'POST', '/api/profiles', { name: 'x', model_path: '/m', keep_alive: -5 }, 422, 'keep_alive'],
    ['duplicate name', 'POST', '/api/profiles', { name: 'qwen-chat', model_path: '/m' }, 409, 'name'],
    ['duplicate port', 'POST', '/api/profiles', { name: 'fresh', model_path: '/m', port: 9000 }, 409, 'port'],
    ['update to a taken name', 'PUT', `/api/profiles/${p2.id}`, { name: 'qwen-chat' }, 409, 'name'],
    ['update with bad value', 'PUT', `/api/profiles/${p2.id}`, { max_concurrency: 0 }, 422, 'max_concurrency'],
    ['update malformed JSON', 'PUT', `/api/profiles/${p2.id}`, '{', 400],
    ['get missing id', 'GET', '/api/profiles/999999', undefined, 404],
    ['get non-numeric id', 'GET', '/api/profiles/abc', undefined, 404],
    ['get negative id', 'GET', '/api/profiles/-1', undefined, 404],
    ['update missing id', 'PUT', '/api/profiles/999999', { temperature: 1 }, 404],
    ['delete missing id', 'DELETE', '/api/profiles/999999', undefined, 404],
    ['duplicate missing id', 'POST', '/api/profiles/999999/duplicate', { new_name: 'z' }, 404],
    ['duplicate without new_name', 'POST', `/api/profiles/${p1.id}/duplicate`, {}, 422, 'new_name'],
    ['duplicate onto taken name', 'POST', `/api/profiles/${p1.id}/duplicate`, { new_name: 'llama' }, 409, 'new_name'],
    ['wrong method on profile', 'PATCH', `/api/profiles/${p1.id}`, undefined, 405],
    ['wrong method on health', 'POST', '/api/health', '{}', 405],
    ['unknown route', 'GET', '/api/does-not-exist', undefined, 404],
    ['unknown /v1 route', 'GET', '/v1/nothing-here', undefined, 404],
    ['settings unknown key', 'PUT', '/api/settings', { nope: 1 }, 422, 'nope'],
    ['settings out of range', 'PUT', '/api/settings', { memory_limit_percent: 5 }, 422, 'memory_limit_percent'],
    ['settings bad URL', 'PUT', '/api/settings', { hf_endpoint: 'ftp://example' }, 422, 'hf_endpoint'],
    ['settings mixed good and bad', 'PUT', '/api/settings', { memory_limit_percent: 60, log_level: 'loud' }, 422, 'log_level'],
    ['settings relative models_dir', 'PUT', '/api/settings', { models_dir: 'relative/path' }, 422, 'models_dir'],
  ];
  for (const [name, method, p, body, status, param] of bad) {
    r = await request(U, method, p, body);
    check(`bad input: ${name} -> ${status}`, isError(r, status, param), `${r.status} ${r.text.slice(0, 300)}`);
  }
  // A missing profile is named the same way by every route that looks one up.
  for (const [method, p, body] of [['GET', '/api/profiles/999999'], ['PUT', '/api/profiles/999999', { temperature: 1 }],
    ['DELETE', '/api/profiles/999999'], ['POST', '/api/profiles/999999/duplicate', { new_name: 'z' }],
    ['POST', '/api/servers/999999/start']]) {
    r = await request(U, method, p, body);
    check(`${method} ${p}: "no profile with id '999999'"`, r.json && r.json.error && r.json.error.message === "no profile with id '999999'", r.text);
  }
  // Invalid UTF-8 inside a JSON string.
  r = await request(U, 'POST', '/api/profiles',
    Buffer.concat([Buffer.from('{"name":"bad'), Buffer.from([0xff, 0xfe]), Buffer.from('","model_path":"/m"}')]));
  check('bad input: invalid UTF-8 -> 422', isError(r, 422, 'name'), r.text);
  r = await request(U, 'PATCH', `/api/profiles/${p1.id}`);
  check('405 carries an Allow header', r.headers.get('allow') === 'GET, PUT, DELETE', r.headers.get('allow'));
  // A body over max_body_bytes (1 MiB here) is refused with a JSON 413.
  r = await request(U, 'POST', '/api/profiles', JSON.stringify({ name: 'big', model_path: '/m', description: 'x'.repeat(2 * 1024 * 1024) }));
  check('bad input: body over the limit -> 413', isError(r, 413), `${r.status} ${r.text.slice(0, 200)}`);

  const after = (await request(U, 'GET', '/api/profiles')).text;
  check('profiles unchanged by the bad requests', after === before, { before, after });
  const settingsAfter = (await request(U, 'GET', '/api/settings')).text;
  check('settings unchanged by the bad requests (no partial write)', settingsAfter === settingsBefore, { settingsBefore, settingsAfter });

  // ---- endurance: 2,000 sequential + 200 concurrent --------------------------
  const paths = ['/api/health', '/api/profiles', `/api/profiles/${p1.id}`, '/api/settings', '/api/system/memory'];
  // Warm-up with the same mix, so caches (SQLite pages, thread stacks) are full.
  for (let i = 0; i < 500; i++) await request(U, 'GET', paths[i % paths.length]);
  await Promise.all(Array.from({ length: 200 }, (_, i) => request(U, 'GET', paths[i % paths.length])));
  const s0 = procStats(srv.pid);
  let errors = 0;
  const t0 = Date.now();
  for (let i = 0; i < 2000; i++) {
    const res = await request(U, 'GET', paths[i % paths.length]);
    if (res.status !== 200) errors++;
  }
  const seqMs = Date.now() - t0;
  check('2,000 sequential requests without an error', errors === 0, `${errors} errors`);
  const t1 = Date.now();
  const results = await Promise.all(Array.from({ length: 200 }, (_, i) =>
    i % 4 === 0
      ? request(U, 'PUT', `/api/profiles/${p2.id}`, { description: `c${i}` })
      : request(U, 'GET', paths[i % paths.length])));
  const concMs = Date.now() - t1;
  const concErrors = results.filter((x) => x.status !== 200).length;
  check('200 concurrent requests without an error', concErrors === 0,
    results.filter((x) => x.status !== 200).slice(0, 3).map((x) => x.status + ' ' + x.text));
  for (let i = 0; i < 200; i++) await request(U, 'GET', '/api/health');
  // Let nginx close its last upstream connections before counting.
  let s1 = procStats(srv.pid);
  await waitFor(() => { s1 = procStats(srv.pid); return s1.fds <= s0.fds; }, 3000, 100);
  console.log(`endurance: 2000 sequential in ${seqMs} ms (${(2000000 / seqMs).toFixed(0)} req/s), ` +
    `200 concurrent in ${concMs} ms; fds ${s0.fds} -> ${s1.fds}, RSS ${s0.rssKb} -> ${s1.rssKb} KiB`);
  check('no fd growth', s1.fds <= s0.fds, `${s0.fds} -> ${s1.fds}`);
  if (BUILD.includes('sanitize')) {
    // ASan keeps freed memory in quarantine (256 MiB), so RSS says nothing here.
    console.log('(RSS growth not judged under the address sanitizer)');
  } else {
    check('no memory growth (RSS within 2 MiB)', s1.rssKb - s0.rssKb < 2048, `${s0.rssKb} -> ${s1.rssKb} KiB`);
  }

  // ---- logs: one JSON line per request, no secrets; SIGHUP reopens ------------
  const lines = fs.readFileSync(logFile, 'utf8').trim().split('\n').map((l) => JSON.parse(l));
  const reqLines = lines.filter((l) => l.msg === 'request');
  check('one structured log line per request', reqLines.length > 2500 &&
    reqLines.every((l) => l.method && l.path && l.status && typeof l.duration_ms === 'number' && l.request_id));
  await request(U, 'GET', '/api/health', undefined, { authorization: 'Bearer sk-verysecretkey' });
  await request(U, 'GET', '/api/health?api_key=sk-querysecret');
  fs.renameSync(logFile, logFile + '.1');
  process.kill(srv.pid, 'SIGHUP');
  const reopened = await waitFor(async () => {
    await request(U, 'GET', '/api/health');
    return fs.existsSync(logFile) && fs.readFileSync(logFile, 'utf8').includes('"path":"/api/health"');
  }, 5000, 100);
  check('SIGHUP reopens the log file', reopened);
  const allLogs = fs.readFileSync(logFile + '.1', 'utf8') + (fs.existsSync(logFile) ? fs.readFileSync(logFile, 'utf8') : '');
  check('logs never contain Authorization or keys', !allLogs.includes('sk-verysecretkey') &&
    !allLogs.includes('sk-querysecret') && !allLogs.includes('supersecret'));

  // ---- persistence across a restart, clean SIGTERM ----------------------------
  const finalProfiles = (await request(U, 'GET', '/api/profiles')).text;
  const finalSettings = (await request(U, 'GET', '/api/settings')).text;
  process.kill(srv.pid, 'SIGTERM');
  const exited = await waitFor(() => !isAlive(srv.pid), 10000);
  check('SIGTERM stops the daemon', exited);
  const tail = fs.readFileSync(logFile, 'utf8');
  check('daemon logged a clean stop', tail.includes('"msg":"stopped"'));
  srv.stop();
  const reports = sanitizerReports(srv.runDir);
  check('no sanitizer reports from the daemon', reports.length === 0, reports.slice(0, 5).join('\n'));
  srv2 = await startServer('workers: 2\n', { stateDir: srv.stateDir });
  const again = (await request(srv2.url, 'GET', '/api/profiles')).text;
  check('profiles survive a restart', again === finalProfiles, { finalProfiles, again });
  const againSettings = (await request(srv2.url, 'GET', '/api/settings')).text;
  check('settings survive a restart', againSettings === finalSettings);

  // ---- the daemon refuses a bad config, naming file and line -----------------
  const badCfg = path.join(srv.runDir, 'bad.yaml');
  fs.writeFileSync(badCfg, 'workers: 4\nmemory_limit_percent: lots\n');
  const res = runBin(['serve', '--config', badCfg, '--listen', path.join(srv.runDir, 'x.sock')]);
  check('bad config refused with file:line', res.status === 1 &&
    res.stderr.includes(`${badCfg}:2:`) && res.stderr.includes('memory_limit_percent'), res.stderr);
} finally {
  if (srv2) srv2.cleanup();
  srv.cleanup();
}
finish();
