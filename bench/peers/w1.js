#!/usr/bin/env node
/*
 * w1.js: the W1 merge of strata-bench on Yjs, Automerge and Loro.
 *
 *   node [--expose-gc] w1.js [--ops N] [--docs D] [--seed S] [--runs R]
 *                            [--only yjs,automerge,loro] [--dump K]
 *
 * The workload is w1_merge's (bench/w_merge.c), generated the same way:
 *  - 4 sources, each writes N/4 register writes in changes of 100 ops;
 *    source i draws from splitmix64 seeded with S * 1000003 + i + 1
 *    (bench_rand() in bench/bench.h, here with BigInt): first the value
 *    (bench_value(): (r >> 2) | 2^40), then the document r % D, whose id
 *    is "d" + 5 digits ("d00042");
 *  - the sources commit one change each in turn;
 *  - the merge takes the changes interleaved, 25 of each source in turn,
 *    in batches of 100 changes (10,000 ops), into a FRESH document, then
 *    reads every document once.
 *
 * "One int field per document" maps, in every library, to one key per
 * document id in one root map (collection "c"): map.set("d00042", value).
 * That is a last-writer-wins register per document, like Strata's field
 * "v" of document "d00042". (A nested map per document would not merge:
 * four peers creating the same nested map concurrently keep only one of
 * them.) Values are the low 53 bits of bench_value() so they are exact
 * JS numbers (integers above 2^31: Yjs and Loro store them as float64,
 * Automerge as a LEB128 int).
 *
 * Per library:
 *  - Yjs: one Y.Doc per source (clientID = i + 1); a change is one
 *    doc.transact() of 100 sets; its update comes from the 'update'
 *    event. The merge applies a batch of 100 updates with Y.applyUpdate
 *    inside one transact() on the fresh doc.
 *  - Automerge: one doc per source (actor = 0x01..0x04 repeated); a
 *    change is one Automerge.change() of 100 assignments; its bytes are
 *    getLastLocalChange(). The merge is one applyChanges() per batch.
 *  - Loro: one LoroDoc per source (peer id i + 1); a change is 100
 *    map.set() then commit(); its update comes from
 *    subscribeLocalUpdates(). The merge is one importBatch() per batch.
 * Building the sources is setup (not timed). Timed: creating the fresh
 * document, the merge, and reading every document. Each library runs R
 * times on fresh documents; seconds is the median.
 *
 * Output: one JSON line per library on stdout:
 *   {"name","version","ops","docs","runs","seconds","min","max",
 *    "ops_per_s","docs_read","update_bytes","wire_bytes_per_op",
 *    "setup_seconds"}
 * update_bytes is the sum of every update the sources produced for the
 * whole W1 (what a peer would send to bring a fresh one up to date, one
 * change at a time); wire_bytes_per_op = update_bytes / ops, the figure
 * strata-bench sets beside w1_sync's bytes on the wire per op.
 * or {"name","error"} if the library could not run. Progress on stderr.
 */
'use strict';

const SOURCES = 4;
const CHANGE_OPS = 100;
const BATCH_CHANGES = 100;
const DOC_WIDTH = 5;

/* ---- options ---- */

function parseArgs(argv) {
    const o = { ops: 1000000, docs: 0, seed: 1n, runs: 1, only: null,
                dump: 0, quiet: false };
    for (let i = 2; i < argv.length; i++) {
        const a = argv[i], v = argv[i + 1];
        if (a === '--ops' && v !== undefined) { o.ops = Number(v); i++; }
        else if (a === '--docs' && v !== undefined) { o.docs = Number(v); i++; }
        else if (a === '--seed' && v !== undefined) { o.seed = BigInt(v); i++; }
        else if (a === '--runs' && v !== undefined) { o.runs = Number(v); i++; }
        else if (a === '--only' && v !== undefined) { o.only = v.split(','); i++; }
        else if (a === '--dump' && v !== undefined) { o.dump = Number(v); i++; }
        else if (a === '--quiet' || a === '-q') o.quiet = true;
        else {
            process.stderr.write('usage: w1.js [--ops N] [--docs D] [--seed S] ' +
                                 '[--runs R] [--only LIBS] [--dump K] [--quiet]\n');
            process.exit(2);
        }
    }
    if (!(o.ops >= SOURCES * CHANGE_OPS) || o.ops % (SOURCES * CHANGE_OPS) !== 0) {
        process.stderr.write('w1.js: --ops must be a multiple of 400\n');
        process.exit(2);
    }
    if (!o.docs)
        o.docs = o.ops / 100; /* w1: 1,000,000 ops over 10,000 documents */
    if (!(o.runs >= 1)) o.runs = 1;
    return o;
}

const opts = parseArgs(process.argv);

function log(msg) {
    if (!opts.quiet) process.stderr.write('peers: ' + msg + '\n');
}

/* ---- the workload (bench.h: bench_rand, bench_value, bench_doc_id) ---- */

const M64 = (1n << 64n) - 1n;
const M53 = (1n << 53n) - 1n;

function splitmix64(st) {
    st.s = (st.s + 0x9e3779b97f4a7c15n) & M64;
    let z = st.s;
    z = ((z ^ (z >> 30n)) * 0xbf58476d1ce4e5b9n) & M64;
    z = ((z ^ (z >> 27n)) * 0x94d049bb133111ebn) & M64;
    return z ^ (z >> 31n);
}

function docId(n) {
    return 'd' + String(n).padStart(DOC_WIDTH, '0');
}

/*
 * changes[i][c] = { keys: [100 doc ids], vals: [100 numbers] }: change c
 * of source i, in commit order. The sources commit one change each in
 * turn; each source has its own PRNG, so the order of generation does
 * not change the values.
 */
function generate() {
    const per = opts.ops / SOURCES, nch = per / CHANGE_OPS;
    const ids = [];
    for (let d = 0; d < opts.docs; d++) ids.push(docId(d));
    const changes = [];
    for (let i = 0; i < SOURCES; i++) {
        const st = { s: (opts.seed * 1000003n + BigInt(i) + 1n) & M64 };
        const list = [];
        for (let c = 0; c < nch; c++) {
            const keys = new Array(CHANGE_OPS), vals = new Array(CHANGE_OPS);
            for (let j = 0; j < CHANGE_OPS; j++) {
                const v = (splitmix64(st) >> 2n) | (1n << 40n); /* bench_value */
                vals[j] = Number(v & M53);
                keys[j] = ids[Number(splitmix64(st) % BigInt(opts.docs))];
            }
            list.push({ keys, vals });
        }
        changes.push(list);
    }
    return { changes, ids };
}

/* Source i's updates in the order the merge takes them: 25 changes of
 * each source in turn, batches of 100 changes. */
function batches(updates) {
    const per = BATCH_CHANGES / SOURCES, out = [];
    const nch = updates[0].length;
    let cur = [];
    for (let c = 0; c < nch; c += per) {
        for (let i = 0; i < SOURCES; i++)
            for (let j = c; j < c + per && j < nch; j++) {
                cur.push(updates[i][j]);
                if (cur.length === BATCH_CHANGES) { out.push(cur); cur = []; }
            }
    }
    if (cur.length) out.push(cur);
    return out;
}

function bytesOf(bs) {
    let n = 0;
    for (const b of bs) for (const u of b) n += u.length;
    return n;
}

/* ---- the libraries ---- */

/* The installed version (some packages do not export package.json). */
function pkgVersion(name) {
    const fs = require('fs'), path = require('path');
    try {
        let dir = path.dirname(require.resolve(name));
        for (;;) {
            const f = path.join(dir, 'package.json');
            if (fs.existsSync(f)) {
                const p = JSON.parse(fs.readFileSync(f, 'utf8'));
                if (p.name === name) return p.version;
            }
            const up = path.dirname(dir);
            if (up === dir) return 'unknown';
            dir = up;
        }
    } catch (e) {
        return 'unknown';
    }
}

const LIBS = {
    yjs: {
        pkg: 'yjs',
        build(Y, w) {
            const updates = [];
            for (let i = 0; i < SOURCES; i++) {
                const doc = new Y.Doc();
                doc.clientID = i + 1;
                const map = doc.getMap('c');
                const list = [];
                doc.on('update', (u) => list.push(u));
                for (const ch of w.changes[i])
                    doc.transact(() => {
                        for (let j = 0; j < CHANGE_OPS; j++)
                            map.set(ch.keys[j], ch.vals[j]);
                    });
                doc.destroy();
                updates.push(list);
            }
            return updates;
        },
        merge(Y, bs, ids) {
            const doc = new Y.Doc();
            doc.clientID = 1000;
            for (const b of bs)
                doc.transact(() => {
                    for (const u of b) Y.applyUpdate(doc, u);
                });
            const map = doc.getMap('c');
            let found = 0;
            for (const id of ids)
                if (map.get(id) !== undefined) found++;
            return { found, doc };
        },
        sample(r, id) { return r.doc.getMap('c').get(id); },
        free(r) { r.doc.destroy(); },
    },
    automerge: {
        pkg: '@automerge/automerge',
        build(A, w) {
            const updates = [];
            for (let i = 0; i < SOURCES; i++) {
                let doc = A.init({ actor: ('0' + (i + 1)).repeat(16) });
                const list = [];
                for (const ch of w.changes[i]) {
                    doc = A.change(doc, (d) => {
                        for (let j = 0; j < CHANGE_OPS; j++)
                            d[ch.keys[j]] = ch.vals[j];
                    });
                    list.push(A.getLastLocalChange(doc));
                }
                updates.push(list);
            }
            return updates;
        },
        merge(A, bs, ids) {
            let doc = A.init({ actor: 'ff'.repeat(16) });
            for (const b of bs)
                [doc] = A.applyChanges(doc, b);
            let found = 0;
            for (const id of ids)
                if (doc[id] !== undefined) found++;
            return { found, doc };
        },
        sample(r, id) { return r.doc[id]; },
        free() {},
    },
    loro: {
        pkg: 'loro-crdt',
        build(L, w) {
            const updates = [];
            for (let i = 0; i < SOURCES; i++) {
                const doc = new L.LoroDoc();
                doc.setPeerId(BigInt(i + 1));
                const map = doc.getMap('c');
                const list = [];
                const unsub = doc.subscribeLocalUpdates((u) => list.push(u));
                for (const ch of w.changes[i]) {
                    for (let j = 0; j < CHANGE_OPS; j++)
                        map.set(ch.keys[j], ch.vals[j]);
                    doc.commit();
                }
                unsub();
                doc.free();
                updates.push(list);
            }
            return updates;
        },
        merge(L, bs, ids) {
            const doc = new L.LoroDoc();
            doc.setPeerId(1000n);
            for (const b of bs)
                doc.importBatch(b);
            const map = doc.getMap('c');
            let found = 0;
            for (const id of ids)
                if (map.get(id) !== undefined) found++;
            return { found, doc };
        },
        sample(r, id) { return r.doc.getMap('c').get(id); },
        free(r) { r.doc.free(); },
    },
};

function gc() {
    if (typeof global.gc === 'function') global.gc();
}

function median(xs) {
    const s = xs.slice().sort((a, b) => a - b), n = s.length;
    return n % 2 ? s[(n - 1) / 2] : (s[n / 2 - 1] + s[n / 2]) / 2;
}

function runLib(name, w) {
    const lib = LIBS[name];
    let mod;
    try {
        mod = require(lib.pkg);
    } catch (e) {
        return { name, error: 'cannot load ' + lib.pkg + ': ' + e.message };
    }
    const version = pkgVersion(lib.pkg);
    try {
        let t0 = performance.now();
        const updates = lib.build(mod, w);
        const bs = batches(updates);
        const setup = (performance.now() - t0) / 1000;
        const ubytes = bytesOf(bs);
        const nchanges = bs.reduce((n, b) => n + b.length, 0);
        if (nchanges !== opts.ops / CHANGE_OPS)
            return { name, error: 'built ' + nchanges + ' changes, expected ' +
                                  opts.ops / CHANGE_OPS };
        log(name + ' ' + version + ': ' + nchanges + ' changes, ' +
            (ubytes / 1048576).toFixed(1) + ' MiB of updates, built in ' +
            setup.toFixed(1) + ' s');
        const secs = [];
        let found = 0;
        for (let r = 0; r < opts.runs; r++) {
            gc();
            t0 = performance.now();
            const res = lib.merge(mod, bs, w.ids);
            const s = (performance.now() - t0) / 1000;
            secs.push(s);
            found = res.found;
            if (opts.dump && r === 0)
                for (let d = 0; d < opts.dump && d < w.ids.length; d++)
                    log(name + ' ' + w.ids[d] + ' = ' + lib.sample(res, w.ids[d]));
            lib.free(res);
            log(name + ' run ' + (r + 1) + '/' + opts.runs + ': ' + s.toFixed(3) +
                ' s (' + Math.round(opts.ops / s) + ' ops/s), ' + found +
                ' docs read');
        }
        const med = median(secs);
        return {
            name, version, ops: opts.ops, docs: opts.docs, runs: opts.runs,
            seconds: med, min: Math.min(...secs), max: Math.max(...secs),
            ops_per_s: opts.ops / med, docs_read: found, update_bytes: ubytes,
            wire_bytes_per_op: ubytes / opts.ops, setup_seconds: setup,
        };
    } catch (e) {
        return { name, version, error: String(e && e.stack || e).split('\n')[0] };
    }
}

function main() {
    const names = opts.only || Object.keys(LIBS);
    for (const n of names)
        if (!LIBS[n]) {
            process.stderr.write('w1.js: unknown library ' + n + '\n');
            process.exit(2);
        }
    let t0 = performance.now();
    const w = generate();
    log('workload: ' + opts.ops + ' ops over ' + opts.docs + ' docs, seed ' +
        opts.seed + ', generated in ' + ((performance.now() - t0) / 1000).toFixed(1) +
        ' s');
    if (opts.dump) {
        const c = w.changes[0][0];
        for (let j = 0; j < opts.dump && j < CHANGE_OPS; j++)
            log('source 0 op ' + j + ': ' + c.keys[j] + ' = ' + c.vals[j]);
    }
    for (const n of names) {
        const r = runLib(n, w);
        process.stdout.write(JSON.stringify(r) + '\n');
        gc();
    }
}

main();
