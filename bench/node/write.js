'use strict';
// write.js: the Node binding's two ways to commit one-op durable changes,
// in one run: txn() on the JS thread, one after the other (the
// reference), and write() on the thread pool, N in flight at once
// (crdt_txn_write() groups them). Prints one JSON object.
//
//   node bench/node/write.js [--pkg DIR] [--n N] [--runs R]
//
// DIR: the built package (default build/bindings/node/pkg). The pool
// has UV_THREADPOOL_SIZE threads (Node's default 4): set it before
// starting node to give write() more writers.
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');

function arg(name, dflt) {
  const i = process.argv.indexOf(name);
  return i > 0 && i + 1 < process.argv.length ? process.argv[i + 1] : dflt;
}
const pkg = path.resolve(arg('--pkg', path.join(__dirname, '..', '..', 'build', 'bindings', 'node', 'pkg')));
const n = Number(arg('--n', 2000));
const runs = Number(arg('--runs', 3));
const strata = require(pkg);

const seconds = (t0) => Number(process.hrtime.bigint() - t0) / 1e9;
const median = (v) => [...v].sort((a, b) => a - b)[Math.floor(v.length / 2)];

async function once() {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'strata-node-write-'));
  try {
    const r = strata.open(dir, { create: true });
    let t0 = process.hrtime.bigint();
    for (let i = 0; i < n; i++) r.txn(t => t.put('c', 'a' + i, 'v', i));
    const txn = n / seconds(t0);
    // the JS thread stays free: count a 1 ms timer's ticks meanwhile
    let ticks = 0;
    const iv = setInterval(() => ticks++, 1);
    t0 = process.hrtime.bigint();
    await Promise.all(Array.from({ length: n }, (_, i) =>
      r.write(w => w.put('c', 'b' + i, 'v', i))));
    const s = seconds(t0);
    clearInterval(iv);
    if (r.get('c', 'b' + (n - 1), 'v') !== n - 1) throw new Error('a write is missing');
    r.close();
    return { txn, write: n / s, ticks_per_ms: ticks / (s * 1000) };
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

(async () => {
  const all = [];
  for (let i = 0; i < runs; i++) all.push(await once());
  const txn = median(all.map(x => x.txn));
  const write = median(all.map(x => x.write));
  console.log(JSON.stringify({
    commits: n,
    runs,
    pool_threads: Number(process.env.UV_THREADPOOL_SIZE || 4),
    txn_commits_per_s: Math.round(txn),
    write_commits_per_s: Math.round(write),
    ratio_write_vs_txn: Number((write / txn).toFixed(2)),
    timer_ticks_per_ms_during_writes: Number(median(all.map(x => x.ticks_per_ms)).toFixed(2)),
  }));
})().catch(e => { console.error(e); process.exit(1); });
