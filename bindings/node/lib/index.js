'use strict';
// strata-crdt: the JS face of the native addon (src/addon.c).
// Replica: open, txn (put/incr/sadd/srem/del), write (the same, committed
// off the JS thread), get/list, subscribe,
// sync over TCP, and a Peer that syncs over any transport.
const path = require('path');
const native = require(path.join(__dirname, '..', 'build', 'strata.node'));

class Txn {
  constructor(h) { this._h = h; }
  put(coll, doc, field, value) { native.op(this._h, 'put', coll, doc, field, value); return this; }
  incr(coll, doc, field, n = 1) { native.op(this._h, 'incr', coll, doc, field, n); return this; }
  sadd(coll, doc, field, value) { native.op(this._h, 'sadd', coll, doc, field, value); return this; }
  srem(coll, doc, field, value) { native.op(this._h, 'srem', coll, doc, field, value); return this; }
  // del(coll, doc) deletes the document; del(coll, doc, field) one field
  del(coll, doc, field) { native.op(this._h, 'del', coll, doc, field ?? null, null); return this; }
  commit() { return native.commit(this._h); }
  abort() { native.abort(this._h); }
}

// The ops of one write(): recorded in JS, applied off the JS thread.
class WriteBatch {
  constructor() { this._ops = []; }
  put(coll, doc, field, value) { this._ops.push(['put', coll, doc, field, value]); return this; }
  incr(coll, doc, field, n = 1) { this._ops.push(['incr', coll, doc, field, n]); return this; }
  sadd(coll, doc, field, value) { this._ops.push(['sadd', coll, doc, field, value]); return this; }
  srem(coll, doc, field, value) { this._ops.push(['srem', coll, doc, field, value]); return this; }
  del(coll, doc, field) { this._ops.push(['del', coll, doc, field ?? null]); return this; }
}

class Subscription {
  constructor(h) { this._h = h; }
  close() { native.unsubscribe(this._h); }
}

// Sync over any transport. The app moves the bytes: give what arrives
// to receive() and send what comes back; start() gives the first bytes
// (a client's hello; empty for a server). Each call resolves once the
// native side has worked through the input (off the JS thread) with
// { out: Buffer, done: boolean }; when done, result() is the report.
class Peer {
  constructor(replica, role) {
    this._h = native.peerNew(replica._handle(), role);
    this._queue = Promise.resolve();
    this.done = false;
    this._end = null;
  }
  _step(bytes, eof) {
    const run = () => native.peerStep(this._h, bytes, eof).then(r => {
      if (r.done && !this.done) {
        this.done = true;
        this._end = r;
        native.peerFree(this._h);
      }
      return { out: r.out, done: r.done };
    });
    const p = this._queue.then(() => (this.done ? { out: Buffer.alloc(0), done: true } : run()));
    this._queue = p.catch(() => {});
    return p;
  }
  start() { return this._step(null, false); }
  receive(bytes) { return this._step(Buffer.from(bytes), false); }
  // the transport ended (the other side hung up)
  end() { return this._step(null, true); }
  // the report, as `strata sync --json` (camelCase); throws the error
  // (with .code, .errno and .report) if the sync failed
  result() {
    if (!this._end) throw Object.assign(new Error('peer: not done yet'), { code: 'CRDT_EAGAIN', errno: -13 });
    if (this._end.error) { this._end.error.report = this._end.report; throw this._end.error; }
    return this._end.report;
  }
  close() { if (!this.done) { this.done = true; this._queue.then(() => native.peerFree(this._h)).catch(() => {}); } }
}

class Replica {
  constructor(h) { this._h = h; this._closed = false; }
  _handle() { return this._h; }
  get info() { return native.info(this._h); }
  // txn(fn): fn(t) records writes; they commit together when fn returns
  // (abort if it throws). Returns the commit info.
  txn(fn) {
    const t = new Txn(native.begin(this._h));
    try {
      fn(t);
    } catch (e) {
      t.abort();
      throw e;
    }
    return t.commit();
  }
  begin() { return new Txn(native.begin(this._h)); }
  // write(fn): fn(w) records writes as txn() does; they commit as one
  // change on Node's thread pool, sharing LMDB txns and syncs with
  // concurrent write()s. Resolves with the commit info once durable;
  // rejects (nothing committed) if fn throws or an op is refused.
  write(fn) {
    try {
      const w = new WriteBatch();
      fn(w);
      return native.write(this._h, w._ops);
    } catch (e) {
      return Promise.reject(e);
    }
  }
  get(coll, doc, field) { return native.get(this._h, coll, doc, field ?? null); }
  collections() { return native.list(this._h, null); }
  docs(coll) { return native.list(this._h, coll); }
  // subscribe({coll, doc, since}, cb): cb(changes) on the JS thread after
  // every commit by any process, changes = [{cursor, coll, doc, fields,
  // whole}] or [{cursor, everything: true}]
  subscribe(filter, cb) {
    if (typeof filter === 'function') { cb = filter; filter = {}; }
    const f = filter || {};
    return new Subscription(native.subscribe(this._h, f.coll ?? null, f.doc ?? null, f.since ?? null, cb));
  }
  sync(host, port) { return native.sync(this._h, String(host), String(port)); }
  peer(role = 'client') { return new Peer(this, role); }
  close() { if (!this._closed) { this._closed = true; native.close(this._h); } }
}

// open(dir, {create}): open the replica in dir (create: make it if missing)
function open(dir, opts = {}) {
  return new Replica(native.open(String(dir), !!opts.create));
}

// Sync over a duplex stream (a socket, a child process's stdio, a
// WebSocket wrapped as a stream): resolves with the report.
async function syncStream(peer, readable, writable) {
  const send = (b) => { if (b.length) writable.write(b); };
  return new Promise((resolve, reject) => {
    let finished = false;
    const finish = () => {
      if (finished) return;
      finished = true;
      readable.removeListener('data', onData);
      readable.removeListener('end', onEnd);
      try { resolve(peer.result()); } catch (e) { reject(e); }
    };
    const onData = (chunk) => peer.receive(chunk).then(r => { send(r.out); if (r.done) finish(); }, reject);
    const onEnd = () => peer.end().then(r => { send(r.out); finish(); }, reject);
    readable.on('data', onData);
    readable.on('end', onEnd);
    peer.start().then(r => { send(r.out); if (r.done) finish(); }, reject);
  });
}

module.exports = { open, syncStream, Replica, Txn, WriteBatch, Peer, Subscription };
