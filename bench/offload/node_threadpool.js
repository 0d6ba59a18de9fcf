'use strict';
// The shootout's Node.js peer on libuv's thread pool (bench/offload/run):
// /hash runs the asynchronous crypto.scrypt, which OpenSSL computes on one
// of UV_THREADPOOL_SIZE threads while the event loop answers /ping.
//
//   UV_THREADPOOL_SIZE=W /usr/bin/node node_threadpool.js --port 0 --workers W
//
// Prints "listening on 127.0.0.1:PORT" once it accepts. The service (routes,
// bounds, byte-exact bodies) is the contract in bench/offload/README.md,
// the same in every peer; node_common.js holds what the Node peers share.
//
// /crash: there is no worker process to lose. A native crash on a thread of
// the pool is a SIGSEGV of the whole process, so the request path sends
// itself one (process.kill(process.pid, 'SIGSEGV')): the server dies, every
// connection with it, and nothing restarts it.
const crypto = require('crypto');
const { parseArgs, send, sendError, maxmem, hashBody, serve } = require('./node_common');

const opts = parseArgs(process.argv.slice(2), 'node_threadpool.js');
// libuv reads it when the pool first runs a job, which is after this line;
// the harness also sets it in the environment, the reliable way.
process.env.UV_THREADPOOL_SIZE = String(opts.workers);

function hash(res, params) {
  const { password, salt, N, r, p, len } = params;
  try {
    crypto.scrypt(password, salt, len, { N, r, p, maxmem: maxmem(params) }, (err, key) => {
      if (err) return sendError(res, 500, `scrypt: ${err.message}`);
      send(res, 200, hashBody(params, key.toString('hex')));
    });
  } catch (err) { // parameters OpenSSL refuses (N >= 2^(16 r)) throw at once
    sendError(res, 400, `scrypt: ${err.message}`);
  }
}

serve(opts, { hash, crash: () => process.kill(process.pid, 'SIGSEGV') });
