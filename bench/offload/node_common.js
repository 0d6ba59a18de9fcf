'use strict';
// What the shootout's Node.js peers share (node_threadpool.js,
// node_piscina.js): the command line, the /hash query's parsing and
// bounds (the contract in bench/offload/README.md, byte for byte), the
// answers, and the server with its routes. Each peer brings how it hashes
// and what /crash does.
const http = require('http');
const os = require('os');

function parseArgs(argv, name) {
  const o = { port: 8080, workers: os.cpus().length };
  for (let i = 0; i < argv.length; i += 2) {
    const v = Number(argv[i + 1]);
    if (argv[i] === '--port' && Number.isInteger(v) && v >= 0 && v < 65536) o.port = v;
    else if (argv[i] === '--workers' && Number.isInteger(v) && v >= 1 && v <= 1024) o.workers = v;
    else {
      process.stderr.write(`usage: ${name} [--port N] [--workers N]\n`);
      process.exit(2);
    }
  }
  return o;
}

// percentDecode(s): the bytes of s with every %XX decoded and '+' a space
// (form encoding, as URLSearchParams, aiohttp and ppx's server read it),
// or null if an escape is malformed.
function percentDecode(s) {
  const out = [];
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c === 0x2b) { out.push(0x20); continue; }
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
    // Names are decoded too; one that cannot be matches nothing.
    const name = percentDecode(eq < 0 ? part : part.slice(0, eq));
    if (name === null) continue;
    const key = name.toString('latin1');
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

// scrypt's maxmem for these parameters: V (128*N*r), B (128*r*p) and room.
function maxmem({ N, r, p }) {
  return 128 * N * r + 128 * r * p + (1 << 20);
}

// hashBody(params, hex): /hash's 200 body.
function hashBody({ N, r, p }, hex) {
  return `{"hash":"${hex}","N":${N},"r":${r},"p":${p}}`;
}

// serve(opts, routes): the HTTP server on 127.0.0.1:opts.port; routes.hash
// (res, params) answers a /hash whose query passed, routes.crash(res) a
// /crash. Prints "listening on 127.0.0.1:PORT" once it accepts.
function serve(opts, routes) {
  const server = http.createServer((req, res) => {
    const q = req.url.indexOf('?');
    const path = q < 0 ? req.url : req.url.slice(0, q);
    const query = q < 0 ? '' : req.url.slice(q + 1);
    if (req.method !== 'GET') return sendError(res, 405, 'method not allowed');
    if (path === '/ping') return send(res, 200, 'pong', 'text/plain');
    if (path === '/crash') return routes.crash(res);
    if (path !== '/hash') return sendError(res, 404, 'not found');
    const h = parseHashQuery(query);
    if (h.error) return sendError(res, 400, h.error);
    return routes.hash(res, h.params);
  });
  server.listen(opts.port, '127.0.0.1', () => {
    process.stdout.write(`listening on 127.0.0.1:${server.address().port}\n`);
  });
  for (const sig of ['SIGINT', 'SIGTERM']) process.on(sig, () => process.exit(0));
}

module.exports = { parseArgs, send, sendError, maxmem, hashBody, serve };
