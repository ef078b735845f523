'use strict';
// The Node binding as an app uses it (installed from the packed tarball
// into a scratch project by run.sh): open, txn, write, reads, errors,
// subscribe (this process and another), sync over TCP with `strata
// serve`, and a Peer over a child process's stdio.
const test = require('node:test');
const assert = require('node:assert');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const { spawn, execFileSync } = require('node:child_process');
const strata = require('strata-crdt');

const S = process.env.STRATA_BIN;
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'strata-js-'));
test.after(() => fs.rmSync(tmp, { recursive: true, force: true }));

function waitFor(pred, ms = 5000) {
  return new Promise((resolve, reject) => {
    const t0 = Date.now();
    const tick = () => {
      if (pred()) return resolve();
      if (Date.now() - t0 > ms) return reject(new Error('timed out'));
      setTimeout(tick, 20);
    };
    tick();
  });
}

test('open, txn with every op, reads as plain JS values', () => {
  const r = strata.open(path.join(tmp, 'a'), { create: true });
  const info = r.txn(t => {
    t.put('todo', 't1', 'title', 'milk');
    t.put('todo', 't1', 'done', false);
    t.put('todo', 't1', 'pi', 3.5);
    t.put('todo', 't1', 'big', 2n ** 60n);
    t.put('todo', 't1', 'raw', Buffer.from([1, 2, 3]));
    t.put('todo', 't1', 'none', null);
    t.incr('todo', 't1', 'views', 5);
    t.incr('todo', 't1', 'views', -2);
    t.sadd('todo', 't1', 'tags', 'b');
    t.sadd('todo', 't1', 'tags', 'a');
    t.sadd('todo', 't1', 'tags', 'x');
    t.srem('todo', 't1', 'tags', 'x');
    t.put('todo', 't2', 'title', 'bread');
  });
  assert.ok(info.firstSeq >= 1 && info.lastSeq >= info.firstSeq);
  assert.deepStrictEqual(r.get('todo', 't1'), {
    big: 2n ** 60n, done: false, none: null, pi: 3.5, raw: Buffer.from([1, 2, 3]),
    tags: ['a', 'b'], title: 'milk', views: 3,
  });
  assert.strictEqual(r.get('todo', 't1', 'views'), 3);
  assert.strictEqual(r.get('todo', 'nope'), undefined);
  assert.strictEqual(r.get('todo', 't1', 'nope'), undefined);
  assert.deepStrictEqual(r.docs('todo'), ['t1', 't2']);
  assert.ok(r.collections().includes('todo'));
  r.txn(t => t.del('todo', 't2').del('todo', 't1', 'pi'));
  assert.deepStrictEqual(r.docs('todo'), ['t1']);
  assert.strictEqual(r.get('todo', 't1', 'pi'), undefined);
  // a throwing txn commits nothing
  assert.throws(() => r.txn(t => { t.put('todo', 't3', 'x', 1); throw new Error('no'); }), /no/);
  assert.strictEqual(r.get('todo', 't3'), undefined);
  r.close();
});

test('errors are exceptions carrying the Strata code', () => {
  const r = strata.open(path.join(tmp, 'e'), { create: true });
  r.txn(t => t.incr('c', 'd', 'n', 1));
  assert.throws(() => r.txn(t => t.put('c', 'd', 'n', 'text')),
    e => e.code === 'CRDT_ETYPE' && e.errno === -19 && /field holds another/.test(e.message) || e.code === 'CRDT_ETYPE');
  assert.throws(() => r.txn(t => t.put('', 'd', 'f', 1)), e => e.code === 'CRDT_EINVAL');
  assert.throws(() => strata.open(path.join(tmp, 'missing')), e => e.code === 'CRDT_ENOTFOUND' && e.errno === -4);
  assert.throws(() => r.txn(t => t.put('c', 'd', 'f', {})), TypeError);
  r.close();
  assert.throws(() => r.get('c', 'd'), e => e.code === 'CRDT_ECLOSED');
});

test('write: changes committed off the JS thread, concurrent ones grouped', async () => {
  const dir = path.join(tmp, 'w');
  const r = strata.open(dir, { create: true });
  const n = 200;
  const infos = await Promise.all(Array.from({ length: n }, (_, i) =>
    r.write(w => w.put('todo', 'd' + i, 'n', i).incr('stats', 'all', 'count', 1))));
  // each write is its own change of two ops; together exactly 2n seqs
  const spans = infos.map(x => [x.firstSeq, x.lastSeq]).sort((a, b) => a[0] - b[0]);
  for (const [f, l] of spans) assert.strictEqual(l - f, 1);
  for (let i = 1; i < spans.length; i++) assert.strictEqual(spans[i][0], spans[i - 1][1] + 1);
  assert.strictEqual(spans[n - 1][1] - spans[0][0] + 1, 2 * n);
  assert.strictEqual(r.get('stats', 'all', 'count'), n);
  for (let i = 0; i < n; i += 37) assert.strictEqual(r.get('todo', 'd' + i, 'n'), i);
  // every op kind, and a write with no ops commits nothing
  const a = await r.write(w => w.sadd('todo', 'd0', 'tags', 'x').sadd('todo', 'd0', 'tags', 'y')
    .srem('todo', 'd0', 'tags', 'x').del('todo', 'd1').del('todo', 'd2', 'n'));
  assert.strictEqual(a.lastSeq - a.firstSeq, 4);
  assert.deepStrictEqual(r.get('todo', 'd0', 'tags'), ['y']);
  assert.strictEqual(r.get('todo', 'd1'), undefined);
  assert.strictEqual(r.get('todo', 'd2', 'n'), undefined);
  assert.strictEqual((await r.write(() => {})).firstSeq, 0);
  // a refused op rejects with its code and leaves nothing of its change
  await assert.rejects(r.write(w => w.put('todo', 'x', 'a', 1).put('stats', 'all', 'count', 'text')),
    e => e.code === 'CRDT_ETYPE' && e.errno === -19);
  assert.strictEqual(r.get('todo', 'x'), undefined);
  await assert.rejects(r.write(() => { throw new Error('no'); }), /no/);
  await assert.rejects(r.write(w => w.put('todo', 'd', 'f', {})), TypeError);
  await assert.rejects(r.write(w => w.put('', 'd', 'f', 1)), e => e.code === 'CRDT_EINVAL');
  // a txn open on the JS thread holds the writer lock: write() says so
  const t = r.begin();
  t.put('todo', 'held', 'v', 1);
  await assert.rejects(r.write(w => w.put('todo', 'y', 'v', 1)), e => e.code === 'CRDT_EBUSY');
  t.commit();
  // writes in flight beside a txn of the JS thread
  const pending = Array.from({ length: 20 }, (_, i) => r.write(w => w.put('mix', 'w' + i, 'v', i)));
  r.txn(t2 => t2.put('mix', 'js', 'v', 'sync'));
  await Promise.all(pending);
  assert.deepStrictEqual(r.docs('mix').length, 21);
  // close() with a write in flight: it lands, then the replica closes
  const last = r.write(w => w.put('todo', 'last', 'v', 'kept'));
  r.close();
  await last;
  const r2 = strata.open(dir);
  assert.strictEqual(r2.get('todo', 'last', 'v'), 'kept');
  assert.strictEqual(r2.get('todo', 'held', 'v'), 1);
  r2.close();
});

test('subscribe: this process and another process, on the JS thread', async () => {
  const dir = path.join(tmp, 's');
  const r = strata.open(dir, { create: true });
  const seen = [];
  const all = r.subscribe(ch => seen.push(...ch));
  const seenDoc = [];
  const one = r.subscribe({ coll: 'todo', doc: 'x' }, ch => seenDoc.push(...ch));
  r.txn(t => t.put('todo', 'x', 'title', 'a').put('other', 'y', 'f', 1));
  await waitFor(() => seen.length >= 2);
  assert.deepStrictEqual(seen.map(c => [c.coll, c.doc, c.fields]),
    [['other', 'y', ['f']], ['todo', 'x', ['title']]]);
  // another process writes: it arrives through the feed watch
  execFileSync(S, ['put', dir, 'todo', 'x', 'done', 'true']);
  await waitFor(() => seenDoc.length >= 2);
  assert.deepStrictEqual(seenDoc[1].fields, ['done']);
  assert.match(seenDoc[1].cursor, /^[0-9a-f]{16}\.\d+$/);
  // resume from a cursor
  const again = [];
  const resumed = r.subscribe({ since: seen[0].cursor }, ch => again.push(...ch));
  await waitFor(() => again.length >= 1);
  assert.deepStrictEqual(again.map(c => c.fields), [['done']]);
  all.close(); one.close(); resumed.close();
  r.close();
});

function serve(dir) {
  return new Promise((resolve, reject) => {
    const p = spawn(S, ['serve', dir, '--listen', '127.0.0.1:0'], { stdio: ['ignore', 'ignore', 'pipe'] });
    let err = '';
    p.stderr.on('data', d => {
      err += d;
      const m = /listening on 127\.0\.0\.1:(\d+)/.exec(err);
      if (m) resolve({ proc: p, port: Number(m[1]) });
    });
    p.on('exit', code => reject(new Error(`serve exited ${code}: ${err}`)));
  });
}

function space(dirA, dirB) {
  execFileSync(S, ['init', dirA]);
  const sp = JSON.parse(execFileSync(S, ['status', dirA, '--json'])).space_id;
  execFileSync(S, ['init', dirB, '--space-id', sp]);
  execFileSync(S, ['member', 'add', dirA, execFileSync(S, ['id', dirB]).toString().trim()]);
}

test('sync over TCP returns a Promise and leaves the event loop free', async () => {
  const A = path.join(tmp, 'tA'), B = path.join(tmp, 'tB');
  space(A, B);
  execFileSync(S, ['put', A, 'todo', 'from-a', 'title', '"hi"']);
  const { proc, port } = await serve(A);
  try {
    const b = strata.open(B);
    b.txn(t => t.put('todo', 'from-b', 'title', 'yo'));
    let ticks = 0;
    const timer = setInterval(() => ticks++, 1);
    const rep = await b.sync('127.0.0.1', port);
    clearInterval(timer);
    assert.strictEqual(rep.inSync, true);
    assert.strictEqual(rep.changesSent, 1);
    assert.strictEqual(rep.cutChanges, 0);
    assert.strictEqual(b.get('todo', 'from-a', 'title'), 'hi');
    // a refused sync rejects with the code: C is of another space, which
    // the server answers with silence (docs/protocol.md, "Failure")
    const c = strata.open(path.join(tmp, 'tC'), { create: true });
    await assert.rejects(c.sync('127.0.0.1', port), e => e.code === 'CRDT_EIO' && e.report !== undefined);
    c.close();
    b.close();
  } finally {
    proc.kill('SIGTERM');
  }
  assert.strictEqual(execFileSync(S, ['get', A, 'todo', 'from-b', 'title']).toString().trim(), '"yo"');
});

test('a Peer syncs over any transport: a child process\'s stdio', async () => {
  const A = path.join(tmp, 'pA'), B = path.join(tmp, 'pB');
  space(A, B);
  execFileSync(S, ['incr', A, 'stats', 's', 'n', '4']);
  const b = strata.open(B);
  b.txn(t => t.incr('stats', 's', 'n', 3));
  const child = spawn(S, ['serve', A, '--stdio', '--quiet'], { stdio: ['pipe', 'pipe', 'inherit'] });
  const exited = new Promise(res => child.on('exit', res));
  const peer = b.peer('client');
  const rep = await strata.syncStream(peer, child.stdout, child.stdin);
  child.stdin.end();
  assert.strictEqual(rep.inSync, true);
  assert.strictEqual(b.get('stats', 's', 'n'), 7);
  assert.strictEqual(await exited, 0);
  assert.strictEqual(execFileSync(S, ['get', A, 'stats', 's', 'n']).toString().trim(), '7');
  b.close();
});

test('two peers in one process, bytes moved by hand', async () => {
  const A = path.join(tmp, 'hA'), B = path.join(tmp, 'hB');
  space(A, B);
  const a = strata.open(A), b = strata.open(B);
  a.txn(t => t.sadd('s', 'd', 'tags', 'from-a'));
  b.txn(t => t.sadd('s', 'd', 'tags', 'from-b'));
  const server = a.peer('server'), client = b.peer('client');
  let toServer = (await client.start()).out, toClient = Buffer.alloc(0);
  for (let i = 0; i < 1000 && !(server.done && client.done); i++) {
    const s = await server.receive(toServer);
    toClient = s.out;
    const c = await client.receive(toClient);
    toServer = c.out;
  }
  assert.ok(server.done && client.done);
  assert.strictEqual(client.result().inSync, true);
  assert.deepStrictEqual(a.get('s', 'd', 'tags'), ['from-a', 'from-b']);
  assert.deepStrictEqual(b.get('s', 'd', 'tags'), ['from-a', 'from-b']);
  a.close(); b.close();
});
