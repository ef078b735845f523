'use strict';
// examples/todo-node as its README runs it: two processes on one replica;
// an edit typed into one appears in the other within a second.
const test = require('node:test');
const assert = require('node:assert');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const { spawn } = require('node:child_process');

const todo = path.join(process.env.STRATA_SRC, 'examples', 'todo-node', 'todo.js');

function start(dir) {
  // run from this scratch project, so require('strata-crdt') resolves to
  // the installed package
  const p = spawn(process.execPath, [todo, dir],
                  { stdio: ['pipe', 'pipe', 'inherit'], env: { ...process.env, NODE_PATH: path.join(process.cwd(), 'node_modules') } });
  p.out = '';
  p.stdout.on('data', d => { p.out += d; });
  p.exited = new Promise(res => p.on('exit', res));
  return p;
}

function waitFor(pred, ms) {
  return new Promise((resolve, reject) => {
    const t0 = Date.now();
    const tick = () => (pred() ? resolve(Date.now() - t0)
                               : Date.now() - t0 > ms ? reject(new Error('timed out')) : setTimeout(tick, 10));
    tick();
  });
}

// The latency is printed, not asserted (a loaded CI machine is slow);
// bench watch_latency measures the feed itself.
test('an edit in one to-do process shows in the other', async () => {
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'strata-todo-'));
  const dir = path.join(tmp, 'todos');
  const a = start(dir);
  await waitFor(() => a.out.includes('(nothing to do)'), 5000);
  const b = start(dir);
  await waitFor(() => b.out.includes('(nothing to do)'), 5000);
  a.stdin.write('add buy milk\n');
  const ms = await waitFor(() => b.out.includes('1. [ ] buy milk'), 10000);
  console.log(`# the other process showed the new item after ${ms} ms`);
  b.stdin.write('done 1\n');
  await waitFor(() => a.out.includes('1. [x] buy milk'), 10000);
  a.stdin.write('quit\n');
  b.stdin.write('quit\n');
  assert.strictEqual(await a.exited, 0);
  assert.strictEqual(await b.exited, 0);
  fs.rmSync(tmp, { recursive: true, force: true });
});
