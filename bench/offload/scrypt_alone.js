// scrypt_alone.c's twin on Node's bundled OpenSSL: crypto.scryptSync with
// the same password, salt, parameters and memory limit, three warm-up
// hashes, then HASHES timed ones; prints {"cpu_ms":..,"wall_ms":..} per hash.
'use strict';
const crypto = require('crypto');
const hashes = Number(process.argv[2] || 20);
const N = 16384, r = 8, p = 1;
const opts = { N, r, p, maxmem: 128 * N * r + 128 * r * p + (1 << 20) };
const hash = () => crypto.scryptSync('correct horse battery staple', 'NaCl-salt', 32, opts);
for (let i = 0; i < 3; i++) hash();
const cpu = process.cpuUsage(), wall = process.hrtime.bigint();
for (let i = 0; i < hashes; i++) hash();
const c = process.cpuUsage(cpu);
console.log(JSON.stringify({
  cpu_ms: (c.user + c.system) / 1000 / hashes,
  wall_ms: Number(process.hrtime.bigint() - wall) / 1e6 / hashes,
}));
