#!/usr/bin/env node
'use strict';
// A local-first to-do list on Strata. Every process that opens the same
// replica directory sees the others' edits within a moment (the change
// feed); `--sync HOST:PORT` also syncs with a `strata serve` now and then.
//
//   node todo.js DIR [--sync HOST:PORT]
//   then type:  add buy milk | done 1 | undo 1 | rm 1 | list | quit
const readline = require('node:readline');
const strata = require('strata-crdt');

const args = process.argv.slice(2);
const dir = args[0];
if (!dir) {
  console.error('usage: node todo.js DIR [--sync HOST:PORT]');
  process.exit(1);
}
const syncAt = args[1] === '--sync' ? args[2] : null;
const r = strata.open(dir, { create: true });

function items() {
  return r.docs('todo').map(id => ({ id, ...r.get('todo', id) }))
    .filter(t => t.title !== undefined)
    .sort((a, b) => (a.created ?? 0) - (b.created ?? 0) || (a.id < b.id ? -1 : 1));
}

function show() {
  const list = items();
  console.log(list.length ? list.map((t, i) => `${i + 1}. [${t.done ? 'x' : ' '}] ${t.title}`).join('\n')
                          : '(nothing to do)');
}

function pick(n) {
  const t = items()[Number(n) - 1];
  if (!t) console.log(`no item ${n}`);
  return t;
}

// Edits by this process or any other reach us here, on the JS thread.
const sub = r.subscribe({ coll: 'todo' }, () => { console.log('--'); show(); });

let timer = null;
if (syncAt) {
  const [host, port] = syncAt.split(':');
  const tick = () => r.sync(host, port).catch(e => console.error(`sync: ${e.message}`));
  tick();
  timer = setInterval(tick, 2000);
}

show();
const rl = readline.createInterface({ input: process.stdin });
rl.on('line', line => {
  const [cmd, ...rest] = line.trim().split(/\s+/);
  const arg = rest.join(' ');
  try {
    if (cmd === 'add' && arg) {
      const id = `${Date.now().toString(36)}-${Math.random().toString(36).slice(2, 8)}`;
      r.txn(t => t.put('todo', id, 'title', arg).put('todo', id, 'done', false)
                  .put('todo', id, 'created', Date.now()));
    } else if ((cmd === 'done' || cmd === 'undo') && pick(arg)) {
      r.txn(t => t.put('todo', pick(arg).id, 'done', cmd === 'done'));
    } else if (cmd === 'rm' && pick(arg)) {
      r.txn(t => t.del('todo', pick(arg).id));
    } else if (cmd === 'list') {
      show();
    } else if (cmd === 'quit') {
      rl.close();
    } else if (cmd) {
      console.log('add TEXT | done N | undo N | rm N | list | quit');
    }
  } catch (e) {
    console.error(`${e.code}: ${e.message}`);
  }
});
rl.on('close', () => {
  sub.close();
  if (timer) clearInterval(timer);
  r.close();
  process.stdin.destroy(); // nothing left to wait for: exit
});
