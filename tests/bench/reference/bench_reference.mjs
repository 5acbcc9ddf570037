// bench_reference.mjs - times llama.cpp, the best-known open CPU engine, on
// this machine beside MLX Manager's engine, on the same model shapes at the
// same bits per weight, and prints the two side by side.  `make
// bench-reference` runs it; it is a benchmark (prints numbers, never fails on
// speed), not a test.
//
// llama.cpp: the source that the npm package node-llama-cpp (pinned below)
// carries as a git bundle, built here with cmake for this CPU (GGML_NATIVE,
// so with its AMX matmul where the CPU has AMX), once, under $BUILD/reference.
// The build type is RelWithDebInfo (-O2): built Release (-O3), its AMX
// matmul crashes in ggml_backend_amx_mul_mat on the AMX Xeon VM we measure
// on (as in llama.cpp issue #20824), and at -O2 it runs.  Its own
// llama-bench times it (timeReference): prefill of 512 tokens, decode of
// 128 from an empty context and after a 512-token one.
// Models: random weights written by gguf_random (this directory), every
// matrix Q4_0 (4.5 bits a weight, as MLX 4-bit g64), Q8_0 (8.5, as MLX
// 8-bit g64) or BF16.  Ours: bench_models on the same shapes, the same
// three measurements, the same thread counts.
//
//   node tests/bench/reference/bench_reference.mjs [--quick] [--threads 1,2]
//        [--shapes llama-1b-32k,llama-110m] [--types q4_0,q8_0,bf16] [--serving]
//
// --serving instead: llama.cpp's llama-server (8 parallel slots, 2 threads)
// on the 110M Llama shape in Q4_0, driven by the same streaming clients as
// bench_serving.mjs drives our server with (serving_clients.mjs): 1, 2, 4
// and 8 clients, then the prefix-cache TTFT of a long system prompt.  Its
// SentencePiece vocabulary of made-up pieces spells our benchmark's words
// byte by byte, so its prompts are longer in tokens than ours: compare
// prompt tokens per second, which the output gives, not raw TTFTs.
//
// Writes $BUILD/bench-reference.json: {"llama_cpp": "<tag>", "runs": [{shape,
// type, threads, reference: {prefill_tps, decode_tps, decode_d512_tps},
// ours: {... and roofline_pct}}]}.
import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { freePort } from '../../integration/lib.mjs';
import { clientsTable, prefixTtft } from '../serving_clients.mjs';

const NODE_LLAMA_CPP = '3.22.1'; // carries llama.cpp's source (its llama/ folder)

const root = path.resolve(path.dirname(new URL(import.meta.url).pathname), '../../..');
const BUILD = path.resolve(root, process.env.BUILD || 'build');
const refDir = path.join(BUILD, 'reference');
const modelsDir = path.join(BUILD, 'bench-models');

// shape: gguf_random's options and bench_models' name for it
const SHAPES = {
  'llama-1b-32k': ['--hidden', '2048', '--layers', '16', '--heads', '32', '--kv-heads', '8',
    '--ffn', '8192', '--vocab', '32000'],
  'llama-110m': ['--hidden', '768', '--layers', '12', '--heads', '12', '--kv-heads', '12',
    '--ffn', '2048', '--vocab', '32000', '--tie'],
};
// llama.cpp type -> bench_models dtype of the same width
const TYPES = { q4_0: 'mlx-4bit', q8_0: 'mlx-8bit', bf16: 'bf16' };

const args = process.argv.slice(2);
const opt = (name, dflt) => {
  const i = args.indexOf(name);
  return i >= 0 && i + 1 < args.length ? args[i + 1].split(',') : dflt;
};
const quick = args.includes('--quick');
const serving = args.includes('--serving');
const threads = opt('--threads', quick ? ['2'] : ['1', '2']).map(Number);
const shapes = opt('--shapes', ['llama-1b-32k']);
const types = opt('--types', quick ? ['q4_0'] : ['q4_0', 'q8_0', 'bf16']);
for (const s of shapes) if (!SHAPES[s]) fail(`unknown shape ${s} (${Object.keys(SHAPES).join(', ')})`);
for (const t of types) if (!TYPES[t]) fail(`unknown type ${t} (${Object.keys(TYPES).join(', ')})`);
if (threads.some((t) => !(t >= 1))) fail('--threads takes positive numbers');

function fail(msg) {
  console.error(`bench_reference: ${msg}`);
  process.exit(2);
}

// Runs a command; returns its standard output.  opts.log: a file for its
// output (standard error too), named on failure; without it standard
// error is shown.  Exits on failure.
function run(cmd, argv, opts = {}) {
  const log = opts.log ? fs.openSync(opts.log, 'a') : 'inherit';
  const r = spawnSync(cmd, argv, { stdio: ['ignore', opts.log ? log : 'pipe', log],
    cwd: opts.cwd, encoding: 'utf8', maxBuffer: 64 << 20,
    env: { ...process.env, MAKEFLAGS: '' } });
  if (opts.log) fs.closeSync(log);
  if (r.error) fail(`${cmd}: ${r.error.message}`);
  if (r.status !== 0)
    fail(`${cmd} ${argv.join(' ')} exited with ${r.status}${opts.log ? ` (output in ${opts.log})` : ''}`);
  return r.stdout;
}

// llama.cpp's source from the node-llama-cpp tarball, built once.
function buildLlamaCpp(target) {
  const src = path.join(refDir, 'llama.cpp');
  const bin = path.join(src, 'build', 'bin');
  const info = path.join(refDir, 'llama.cpp.info.json');
  const log = path.join(refDir, 'build.log');
  if (fs.existsSync(path.join(bin, target)) && fs.existsSync(info))
    return { bin, tag: JSON.parse(fs.readFileSync(info, 'utf8')).tag };
  if (fs.existsSync(path.join(src, 'build', 'CMakeCache.txt')) && fs.existsSync(info)) {
    console.log(`building llama.cpp's ${target} (output in ${log})`);
    run('cmake', ['--build', path.join(src, 'build'), '-j', '2', '--target', target], { log });
    return { bin, tag: JSON.parse(fs.readFileSync(info, 'utf8')).tag };
  }
  fs.mkdirSync(refDir, { recursive: true });
  const tgz = `node-llama-cpp-${NODE_LLAMA_CPP}.tgz`;
  if (!fs.existsSync(path.join(refDir, tgz))) {
    console.log(`fetching node-llama-cpp ${NODE_LLAMA_CPP} from npm (it carries llama.cpp's source)`);
    run('npm', ['pack', '--silent', `node-llama-cpp@${NODE_LLAMA_CPP}`, '--pack-destination', refDir],
      { log: path.join(refDir, 'npm.log') });
  }
  run('tar', ['-xzf', tgz, 'package/llama/gitRelease.bundle', 'package/llama/llama.cpp.info.json'],
    { cwd: refDir });
  fs.renameSync(path.join(refDir, 'package/llama/llama.cpp.info.json'), info);
  fs.rmSync(src, { recursive: true, force: true });
  run('git', ['-c', 'advice.detachedHead=false', 'clone', '--quiet',
    path.join(refDir, 'package/llama/gitRelease.bundle'), src]);
  fs.rmSync(path.join(refDir, 'package'), { recursive: true, force: true });
  const tag = JSON.parse(fs.readFileSync(info, 'utf8')).tag;
  fs.rmSync(log, { force: true });
  console.log(`building llama.cpp ${tag} for this CPU (a few minutes on 2 cores; output in ${log})`);
  run('cmake', ['-S', src, '-B', path.join(src, 'build'), '-DCMAKE_BUILD_TYPE=RelWithDebInfo',
    '-DGGML_NATIVE=ON', '-DLLAMA_CURL=OFF', '-DBUILD_SHARED_LIBS=OFF', '-DLLAMA_BUILD_TESTS=OFF',
    '-DLLAMA_BUILD_EXAMPLES=OFF'], { log });
  run('cmake', ['--build', path.join(src, 'build'), '-j', '2', '--target', target], { log });
  return { bin, tag };
}

function ensureGguf(shape, type) {
  const file = path.join(modelsDir, `${shape}-${type}.gguf`);
  if (!fs.existsSync(file)) {
    // written aside first: an interrupted run leaves no half file to reuse
    fs.mkdirSync(modelsDir, { recursive: true });
    run(path.join(BUILD, 'bench', 'reference', 'gguf_random'),
      ['--out', `${file}.part`, '--type', type, ...SHAPES[shape]], { log: path.join(refDir, 'models.log') });
    fs.renameSync(`${file}.part`, file);
  }
  return file;
}

// llama-bench: prefill of 512 tokens (pp512), decode of 128 from an empty
// context (tg128) and after a 512-token one (tg128 @ d512), each its mean
// over the repetitions (avg_ts).
function timeReference(bin, model, nthreads) {
  const bench = (extra) => JSON.parse(run(path.join(bin, 'llama-bench'), ['-m', model, ...extra,
    '-t', String(nthreads), '-r', quick ? '2' : '3', '-o', 'json']));
  const rows = bench(['-p', '512', '-n', '128']);
  const pick = (f) => rows.find(f)?.avg_ts ?? NaN;
  return {
    prefill_tps: pick((r) => r.n_prompt === 512 && r.n_gen === 0),
    decode_tps: pick((r) => r.n_gen === 128 && r.n_prompt === 0),
    decode_d512_tps: bench(['-p', '0', '-n', '128', '-d', '512'])[0]?.avg_ts ?? NaN,
  };
}

// bench_models the same three ways: its 512-token prefill and the decode
// after it, then the decode after a 1-token prompt.
function timeOurs(shape, dtype, nthreads) {
  const json = path.join(refDir, 'ours.json');
  const bench = (prefill) => {
    run(path.join(BUILD, 'bench', 'bench_models'), ['--only', shape, '--dtype', dtype,
      '--threads', String(nthreads), '--prefill', String(prefill), '--decode', '128',
      '--models-only', '--json', json]);
    return JSON.parse(fs.readFileSync(json, 'utf8')).runs[0];
  };
  const after512 = bench(512), empty = bench(1);
  return { prefill_tps: after512.prefill_tps, decode_tps: empty.decode_tps,
    decode_d512_tps: after512.decode_tps, roofline_pct: empty.roofline_pct };
}

// llama-server on the 110M shape, driven as bench_serving.mjs drives ours.
async function servingReference() {
  const { bin, tag } = buildLlamaCpp('llama-server');
  const model = ensureGguf('llama-110m', 'q4_0');
  const port = await freePort();
  const base = `http://127.0.0.1:${port}`;
  const log = path.join(refDir, 'llama-server.log');
  const out = fs.openSync(log, 'w');
  // 8 slots of 12288 tokens: room in any slot for the long system prompt,
  // which this vocabulary spells in about 8,500 tokens
  const srv = spawn(path.join(bin, 'llama-server'), ['-m', model, '--host', '127.0.0.1',
    '--port', String(port), '-np', '8', '-c', String(8 * 12288), '-t', '2', '--no-webui'],
  { stdio: ['ignore', out, out] });
  const stop = () => { if (srv.exitCode === null) srv.kill('SIGTERM'); };
  process.on('exit', stop);
  try {
    let up = false;
    for (let i = 0; i < 600 && !up && srv.exitCode === null; i++) {
      try { up = (await fetch(`${base}/health`)).status === 200; } catch { /* not listening yet */ }
      if (!up) await new Promise((r) => setTimeout(r, 100));
    }
    if (!up) fail(`llama-server did not come up in 60 s (log: ${log})`);
    const tokens = quick ? 24 : 64, repeat = quick ? 2 : 3;
    console.log(`\n## llama.cpp ${tag} llama-server, llama-110m Q4_0, 8 slots, 2 threads, ${tokens} tokens per client`);
    const clients = await clientsTable(base, 'm', [1, 2, 4, 8], tokens, repeat);
    const prefix = await prefixTtft(base, 'm', repeat);
    const outFile = path.join(BUILD, 'bench-reference-serving.json');
    fs.writeFileSync(outFile, JSON.stringify({ llama_cpp: tag, shape: 'llama-110m', type: 'q4_0', clients, prefix }, null, 1) + '\n');
    console.log(`wrote ${outFile}`);
  } finally {
    stop();
    fs.closeSync(out);
  }
}

if (serving) {
  await servingReference();
  process.exit(0);
}
const { bin, tag } = buildLlamaCpp('llama-bench');
const results = [];
const f1 = (x) => (Number.isFinite(x) ? x.toFixed(1) : '-');
const ratio = (a, b) => (Number.isFinite(a) && Number.isFinite(b) && b > 0 ? `${(a / b).toFixed(2)}x` : '-');
const cell = (ref, ours) => `${f1(ref).padStart(7)} ${f1(ours).padStart(7)} ${ratio(ours, ref).padStart(6)}`;
console.log(`\nllama.cpp ${tag} (llama-bench) vs MLX Manager (bench_models), tokens/s: llama.cpp, ours, ours/llama.cpp`);
console.log('                          | prefill 512            | decode 128             | decode 128 after 512');
console.log('shape          type  thr  |   llama    ours  ratio |   llama    ours  ratio |   llama    ours  ratio');
for (const shape of shapes) {
  for (const type of types) {
    const model = ensureGguf(shape, type);
    for (const t of threads) {
      const reference = timeReference(bin, model, t);
      const ours = timeOurs(shape, TYPES[type], t);
      results.push({ shape, type, ours_dtype: TYPES[type], threads: t, reference, ours });
      console.log(`${shape.padEnd(14)} ${type.padEnd(5)} ${String(t).padStart(3)}  | `
        + `${cell(reference.prefill_tps, ours.prefill_tps)} | ${cell(reference.decode_tps, ours.decode_tps)} | `
        + `${cell(reference.decode_d512_tps, ours.decode_d512_tps)}`);
    }
  }
}
const outFile = path.join(BUILD, 'bench-reference.json');
fs.writeFileSync(outFile, JSON.stringify({ llama_cpp: tag, runs: results }, null, 1) + '\n');
console.log(`wrote ${outFile}`);
