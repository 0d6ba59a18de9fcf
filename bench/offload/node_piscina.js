'use strict';
// The shootout's Node.js peer on piscina worker threads (bench/offload/run):
// /hash runs crypto.scryptSync in one of W piscina workers (minThreads =
// maxThreads = W) while the event loop answers /ping. This one file is both
// the server (main thread) and piscina's worker module.
//
//   /usr/bin/node node_piscina.js --port 0 --workers W
//
// piscina comes from npm (package.json here pins it; bench/offload/run
// installs it into bench/offload/node_modules). Prints "listening on
// 127.0.0.1:PORT" once it accepts. The service (routes, bounds, byte-exact
// bodies) is the contract in bench/offload/README.md, the same in every
// peer; each peer is one file, so the parsing is repeated.
//
// /crash: the worker thread sends the process SIGSEGV
// (process.kill(process.pid, 'SIGSEGV')), what a native crash in the job
// does. A worker thread is no process: a signal, like a segfault in its
// native code, kills the whole server, and nothing restarts it.
const { isMainThread } = require('worker_threads');

if (isMainThread) serve();
else module.exports = job;

// job(task): the worker's side: the hash as hex, or {error} for
// parameters OpenSSL refuses.
function job(task) {
  const crypto = require('crypto');
  if (task.crash) return process.kill(process.pid, 'SIGSEGV');
  const { password, salt, N, r, p, len } = task;
  const maxmem = 128 * N * r + 128 * r * p + (1 << 20);
  try {
    return crypto.scryptSync(password, salt, len, { N, r, p, maxmem }).toString('hex');
  } catch (err) {
    return { error: `scrypt: ${err.message}` };
  }
}

function serve() {
  const http = require('http');
  const os = require('os');
  const Piscina = require('piscina');
  const opts = parseArgs(process.argv.slice(2));
  const pool = new Piscina({ filename: __filename, minThreads: opts.workers, maxThreads: opts.workers });

  async function hash(res, query) {
    const q = parseHashQuery(query);
    if (q.error) return sendError(res, 400, q.error);
    const { N, r, p } = q.params;
    let key;
    try {
      key = await pool.run(q.params);
    } catch (err) {
      return sendError(res, 500, `piscina: ${err.message}`);
    }
    if (key.error) return sendError(res, 400, key.error);
    send(res, 200, `{"hash":"${key}","N":${N},"r":${r},"p":${p}}`);
  }

  const server = http.createServer((req, res) => {
    const q = req.url.indexOf('?');
    const path = q < 0 ? req.url : req.url.slice(0, q);
    const query = q < 0 ? '' : req.url.slice(q + 1);
    if (req.method !== 'GET') return sendError(res, 405, 'method not allowed');
    if (path === '/ping') return send(res, 200, 'pong', 'text/plain');
    if (path === '/hash') return hash(res, query);
    if (path === '/crash') {
      return pool.run({ crash: true }).then(
        () => sendError(res, 500, 'the crash did not happen'),
        (err) => sendError(res, 500, `piscina: ${err.message}`));
    }
    sendError(res, 404, 'not found');
  });
  server.listen(opts.port, '127.0.0.1', () => {
    process.stdout.write(`listening on 127.0.0.1:${server.address().port}\n`);
  });
  for (const sig of ['SIGINT', 'SIGTERM']) process.on(sig, () => process.exit(0));

  function parseArgs(argv) {
    const o = { port: 8080, workers: os.cpus().length };
    for (let i = 0; i < argv.length; i += 2) {
      const v = Number(argv[i + 1]);
      if (argv[i] === '--port' && Number.isInteger(v) && v >= 0 && v < 65536) o.port = v;
      else if (argv[i] === '--workers' && Number.isInteger(v) && v >= 1 && v <= 1024) o.workers = v;
      else {
        process.stderr.write('usage: node_piscina.js [--port N] [--workers N]\n');
        process.exit(2);
      }
    }
    return o;
  }
}

// percentDecode(s): the bytes of s with every %XX decoded ('+' stays '+'),
// or null if an escape is malformed.
function percentDecode(s) {
  const out = [];
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    // Node hands the request line over as latin1: one char, one byte.
    if (c !== 0x25) { out.push(c & 0xff); continue; }
    const hex = s.slice(i + 1, i + 3);
    if (!/^[0-9A-Fa-f]{2}$/.test(hex)) return null;
    out.push(parseInt(hex, 16));
    i += 2;
  }
  return Buffer.from(out);
}

// parseHashQuery(query): {params} or {error}. Integers are plain decimal
// digits; every bound is checked before any work.
function parseHashQuery(query) {
  const raw = Object.create(null); // no inherited keys ("constructor")
  for (const part of query ? query.split('&') : []) {
    const eq = part.indexOf('=');
    const key = eq < 0 ? part : part.slice(0, eq);
    if (key in raw) continue;
    const value = percentDecode(eq < 0 ? '' : part.slice(eq + 1));
    if (value === null) return { error: `${key}: malformed percent-encoding` };
    raw[key] = value;
  }
  const p = {};
  for (const key of ['password', 'salt']) {
    const b = raw[key];
    if (!b || b.length < 1 || b.length > 256) return { error: `${key} must be 1..256 bytes` };
    p[key] = b;
  }
  const ints = [['N', 16384, 2, 1048576], ['r', 8, 1, 32], ['p', 1, 1, 16], ['len', 32, 1, 64]];
  for (const [key, dflt, lo, hi] of ints) {
    if (!(key in raw)) { p[key] = dflt; continue; }
    const s = raw[key].toString('latin1');
    if (!/^[0-9]{1,8}$/.test(s) || Number(s) < lo || Number(s) > hi)
      return { error: `${key} must be an integer in [${lo},${hi}]` };
    p[key] = Number(s);
  }
  if ((p.N & (p.N - 1)) !== 0) return { error: 'N must be a power of two' };
  if (128 * p.N * p.r > 67108864) return { error: '128*N*r must be at most 67108864' };
  return { params: p };
}

function send(res, status, body, type = 'application/json') {
  res.writeHead(status, { 'Content-Type': type, 'Content-Length': Buffer.byteLength(body) });
  res.end(body);
}

function sendError(res, status, message) {
  send(res, status, JSON.stringify({ error: message }));
}
