#!/usr/bin/env node
/*
 * w2.js: the W2 text workload of strata-bench on Yjs, Loro and Automerge.
 *
 *   node [--expose-gc] w2.js --trace FILE.json.gz [--edits N] [--runs R]
 *                            [--batch B] [--only yjs,loro,automerge]
 *                            [--quiet]
 *
 * The workload is w2's (bench/w_text.c): a SEQUENTIAL editing trace
 * (the automerge-paper trace: JSON, gzip or plain, {"startContent", "endContent",
 * "txns": [{"patches": [[pos, del, ins], ...]}]}, positions in Unicode
 * code points), its first N patches (default: all of them).
 *
 * Per library, on one text field ("text") of one document:
 *  - local replay (timed): every patch applied in order, B patches
 *    (default 1,000) per transaction: Yjs doc.transact(), Loro commit(),
 *    Automerge change(). Then the text is checked against endContent
 *    (whole trace) or against nothing more (a prefix: the merge check
 *    below still compares the two replicas).
 *  - update bytes: the whole document as one update: Yjs
 *    encodeStateAsUpdate (v1), Loro export({mode: "update"}), Automerge
 *    save() (its compressed columnar document).
 *  - merge (timed, median of R runs): a FRESH document applies that
 *    update (Y.applyUpdate, LoroDoc.import, Automerge.load), then the
 *    whole text is read; it must equal the replayed text.
 *
 * Positions: the libraries index JavaScript strings in UTF-16 units; the
 * trace counts code points. When the trace inserts no character outside
 * the BMP the two are the same; otherwise the script refuses (a peer
 * figure is optional, a wrong one is not).
 *
 * Output: one JSON line per library on stdout:
 *   {"name","version","edits","runs","replay_seconds","replay_ops_per_s",
 *    "merge_seconds","merge_min","merge_max","merge_ops_per_s",
 *    "update_bytes","text_chars","checked_end_content"}
 * or {"name","error"}. Progress on stderr.
 */
'use strict';

const fs = require('fs');
const zlib = require('zlib');

function parseArgs(argv) {
    const o = { trace: null, edits: 0, runs: 1, batch: 1000, only: null,
                quiet: false };
    for (let i = 2; i < argv.length; i++) {
        const a = argv[i], v = argv[i + 1];
        if (a === '--trace' && v !== undefined) { o.trace = v; i++; }
        else if (a === '--edits' && v !== undefined) { o.edits = Number(v); i++; }
        else if (a === '--runs' && v !== undefined) { o.runs = Number(v); i++; }
        else if (a === '--batch' && v !== undefined) { o.batch = Number(v); i++; }
        else if (a === '--only' && v !== undefined) { o.only = v.split(','); i++; }
        else if (a === '--quiet' || a === '-q') o.quiet = true;
        else {
            process.stderr.write('usage: w2.js --trace FILE [--edits N] ' +
                                 '[--runs R] [--batch B] [--only LIBS] ' +
                                 '[--quiet]\n');
            process.exit(2);
        }
    }
    if (!o.trace) {
        process.stderr.write('w2.js: --trace is required\n');
        process.exit(2);
    }
    if (!(o.runs >= 1)) o.runs = 1;
    if (!(o.batch >= 1)) o.batch = 1000;
    return o;
}

const opts = parseArgs(process.argv);

function log(msg) {
    if (!opts.quiet) process.stderr.write('peers w2: ' + msg + '\n');
}

/* The trace as flat arrays: pos[i], del[i], ins[i]. */
function loadTrace() {
    const file = fs.readFileSync(opts.trace);
    const raw = file.length >= 2 && file[0] === 0x1f && file[1] === 0x8b
        ? zlib.gunzipSync(file) : file;
    const t = JSON.parse(raw.toString('utf8'));
    if (t.kind === 'concurrent')
        throw new Error('w2.js replays sequential traces only');
    if (!Array.isArray(t.txns) || typeof t.endContent !== 'string')
        throw new Error('not an editing trace (txns, endContent)');
    const pos = [], del = [], ins = [];
    let bmp = true;
    for (const tx of t.txns)
        for (const p of tx.patches) {
            pos.push(p[0]);
            del.push(p[1]);
            ins.push(p[2]);
            if (/[\ud800-\udfff]/.test(p[2])) bmp = false;
        }
    if (/[\ud800-\udfff]/.test(t.startContent || '')) bmp = false;
    let n = pos.length;
    if (opts.edits > 0 && opts.edits < n) n = opts.edits;
    return { start: t.startContent || '', end: t.endContent, pos, del, ins,
             n, whole: n === pos.length, bmp };
}

function pkgVersion(name) {
    const path = require('path');
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

/* Apply patches [from, to) through ins(pos, str) / del(pos, len). */
function applyRange(t, from, to, insert, remove) {
    for (let i = from; i < to; i++) {
        if (t.del[i] > 0) remove(t.pos[i], t.del[i]);
        if (t.ins[i].length > 0) insert(t.pos[i], t.ins[i]);
    }
}

const LIBS = {
    yjs: {
        pkg: 'yjs',
        replay(Y, t) {
            const doc = new Y.Doc();
            doc.clientID = 1;
            const text = doc.getText('text');
            if (t.start) text.insert(0, t.start);
            for (let i = 0; i < t.n; i += opts.batch)
                doc.transact(() => applyRange(t, i, Math.min(i + opts.batch, t.n),
                    (p, s) => text.insert(p, s), (p, l) => text.delete(p, l)));
            return { doc, str: text.toString() };
        },
        update(Y, r) { return Y.encodeStateAsUpdate(r.doc); },
        merge(Y, u) {
            const doc = new Y.Doc();
            doc.clientID = 1000;
            Y.applyUpdate(doc, u);
            const s = doc.getText('text').toString();
            doc.destroy();
            return s;
        },
        free(r) { r.doc.destroy(); },
    },
    loro: {
        pkg: 'loro-crdt',
        replay(L, t) {
            const doc = new L.LoroDoc();
            doc.setPeerId(1n);
            const text = doc.getText('text');
            if (t.start) { text.insert(0, t.start); doc.commit(); }
            for (let i = 0; i < t.n; i += opts.batch) {
                applyRange(t, i, Math.min(i + opts.batch, t.n),
                    (p, s) => text.insert(p, s), (p, l) => text.delete(p, l));
                doc.commit();
            }
            return { doc, str: text.toString() };
        },
        update(L, r) { return r.doc.export({ mode: 'update' }); },
        merge(L, u) {
            const doc = new L.LoroDoc();
            doc.setPeerId(1000n);
            doc.import(u);
            const s = doc.getText('text').toString();
            doc.free();
            return s;
        },
        free(r) { r.doc.free(); },
    },
    automerge: {
        pkg: '@automerge/automerge',
        replay(A, t) {
            let doc = A.from({ text: t.start }, { actor: '01'.repeat(16) });
            for (let i = 0; i < t.n; i += opts.batch)
                doc = A.change(doc, (d) => applyRange(t, i,
                    Math.min(i + opts.batch, t.n),
                    (p, s) => A.splice(d, ['text'], p, 0, s),
                    (p, l) => A.splice(d, ['text'], p, l)));
            return { doc, str: doc.text };
        },
        update(A, r) { return A.save(r.doc); },
        merge(A, u) {
            const doc = A.load(u, { actor: 'ff'.repeat(16) });
            return String(doc.text);
        },
        free() {},
    },
};

function gc() {
    if (typeof global.gc === 'function') global.gc();
}

function median(xs) {
    const s = xs.slice().sort((a, b) => a - b), n = s.length;
    return n % 2 ? s[(n - 1) / 2] : (s[n / 2 - 1] + s[n / 2]) / 2;
}

function runLib(name, t) {
    const lib = LIBS[name];
    let mod;
    try {
        mod = require(lib.pkg);
    } catch (e) {
        return { name, error: 'cannot load ' + lib.pkg + ': ' + e.message };
    }
    const version = pkgVersion(lib.pkg);
    try {
        gc();
        let t0 = performance.now();
        const r = lib.replay(mod, t);
        const replay = (performance.now() - t0) / 1000;
        if (t.whole && r.str !== t.end)
            return { name, version, error: 'local replay does not end with ' +
                     'endContent (' + r.str.length + ' vs ' + t.end.length +
                     ' units)' };
        const u = lib.update(mod, r);
        const want = r.str;
        lib.free(r);
        log(name + ' ' + version + ': replay of ' + t.n + ' edits in ' +
            replay.toFixed(3) + ' s, update ' + u.length + ' bytes');
        const secs = [];
        for (let k = 0; k < opts.runs; k++) {
            gc();
            t0 = performance.now();
            const s = lib.merge(mod, u);
            const sec = (performance.now() - t0) / 1000;
            if (s !== want)
                return { name, version, error: 'merged text differs from ' +
                         'the replayed text' };
            secs.push(sec);
            log(name + ' merge run ' + (k + 1) + '/' + opts.runs + ': ' +
                sec.toFixed(3) + ' s (' + Math.round(t.n / sec) + ' ops/s)');
        }
        const med = median(secs);
        return {
            name, version, edits: t.n, runs: opts.runs,
            replay_seconds: replay, replay_ops_per_s: t.n / replay,
            merge_seconds: med, merge_min: Math.min(...secs),
            merge_max: Math.max(...secs), merge_ops_per_s: t.n / med,
            update_bytes: u.length, text_chars: [...want].length,
            checked_end_content: t.whole,
        };
    } catch (e) {
        return { name, version, error: String(e && e.stack || e).split('\n')[0] };
    }
}

function main() {
    const names = opts.only || Object.keys(LIBS);
    for (const n of names)
        if (!LIBS[n]) {
            process.stderr.write('w2.js: unknown library ' + n + '\n');
            process.exit(2);
        }
    let t;
    try {
        t = loadTrace();
    } catch (e) {
        for (const n of names)
            process.stdout.write(JSON.stringify({ name: n, error: 'trace: ' +
                                                  e.message }) + '\n');
        return;
    }
    if (!t.bmp) {
        for (const n of names)
            process.stdout.write(JSON.stringify({ name: n, error: 'trace ' +
                'inserts characters outside the BMP (UTF-16 positions ' +
                'differ from code points)' }) + '\n');
        return;
    }
    log('trace ' + opts.trace + ': ' + t.n + ' of ' + t.pos.length +
        ' edits, ' + opts.batch + ' per txn');
    for (const n of names) {
        process.stdout.write(JSON.stringify(runLib(n, t)) + '\n');
        gc();
    }
}

main();
