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
// peer; node_common.js holds what the Node peers share.
//
// /crash: the worker thread sends the process SIGSEGV
// (process.kill(process.pid, 'SIGSEGV')), what a native crash in the job
// does. A worker thread is no process: a signal, like a segfault in its
// native code, kills the whole server, and nothing restarts it.
const { isMainThread } = require('worker_threads');
const { parseArgs, send, sendError, maxmem, hashBody, serve } = require('./node_common');

if (isMainThread) main();
else module.exports = job;

// job(task): the worker's side: the hash as hex, or {error} for
// parameters OpenSSL refuses.
function job(task) {
  const crypto = require('crypto');
  if (task.crash) return process.kill(process.pid, 'SIGSEGV');
  const { password, salt, N, r, p, len } = task;
  try {
    return crypto.scryptSync(password, salt, len, { N, r, p, maxmem: maxmem(task) }).toString('hex');
  } catch (err) {
    return { error: `scrypt: ${err.message}` };
  }
}

function main() {
  const Piscina = require('piscina');
  const opts = parseArgs(process.argv.slice(2), 'node_piscina.js');
  const pool = new Piscina({ filename: __filename, minThreads: opts.workers, maxThreads: opts.workers });

  async function hash(res, params) {
    let key;
    try {
      key = await pool.run(params);
    } catch (err) {
      return sendError(res, 500, `piscina: ${err.message}`);
    }
    if (key.error) return sendError(res, 400, key.error);
    send(res, 200, hashBody(params, key));
  }

  function crash(res) {
    return pool.run({ crash: true }).then(
      () => sendError(res, 500, 'the crash did not happen'),
      (err) => sendError(res, 500, `piscina: ${err.message}`));
  }

  serve(opts, { hash, crash });
}
