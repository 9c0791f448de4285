// The browser worker spawner's start-up protocol, with a stand-in Worker class (the real Web Workers
// run in test/browser/browser.test.ts): 'ready' resolves, { error } and load failures reject with the
// worker's id and URL, and a context without cross-origin isolation reports no worker support.
import { afterEach, test } from 'node:test';
import assert from 'node:assert/strict';
import { browserCores, webWorkerSpawner, webWorkersAvailable } from '../../src/backend/wasm/pool-browser.js';
import type { WorkerInit } from '../../src/backend/wasm/pool.js';

type Script = (w: FakeWorker, msg: unknown) => void;

class FakeWorker {
  static script: Script = () => {};
  static made: FakeWorker[] = [];
  onmessage: ((e: MessageEvent) => void) | null = null;
  onerror: ((e: ErrorEvent) => void) | null = null;
  onmessageerror: ((e: MessageEvent) => void) | null = null;
  posted: unknown[] = [];
  terminated = false;
  constructor(
    readonly url: string | URL,
    readonly opts: { type: string; name?: string },
  ) {
    FakeWorker.made.push(this);
  }
  postMessage(msg: unknown): void {
    this.posted.push(msg);
    queueMicrotask(() => FakeWorker.script(this, msg));
  }
  terminate(): void {
    this.terminated = true;
  }
  reply(data: unknown): void {
    this.onmessage?.({ data } as MessageEvent);
  }
}

const g = globalThis as { Worker?: unknown; crossOriginIsolated?: boolean };
const init = (tid: number) => ({ tid }) as unknown as WorkerInit;

afterEach(() => {
  delete g.Worker;
  delete g.crossOriginIsolated;
  FakeWorker.made = [];
});

test('a module worker is started with the init message and resolves on "ready"', async () => {
  g.Worker = FakeWorker;
  FakeWorker.script = (w) => w.reply('ready');
  const h = webWorkerSpawner('/lib/worker-web.js')(init(3));
  await h.ready;
  const w = FakeWorker.made[0]!;
  assert.equal(String(w.url), '/lib/worker-web.js');
  assert.equal(w.opts.type, 'module');
  assert.deepEqual(w.posted, [init(3)]);
  h.terminate();
  assert.equal(w.terminated, true);
});

test('the default worker URL is worker-web.js next to the module', async () => {
  g.Worker = FakeWorker;
  FakeWorker.script = (w) => w.reply('ready');
  await webWorkerSpawner()(init(1)).ready;
  assert.match(String(FakeWorker.made[0]!.url), /\/backend\/wasm\/worker-web\.js$/);
});

test('an instantiate failure reported by the worker rejects, naming the worker and the reason', async () => {
  g.Worker = FakeWorker;
  FakeWorker.script = (w) => w.reply({ error: 'instantiate: memory import mismatch' });
  const expected = /web worker 2 \(\/w\.js\) failed to start: instantiate: memory import mismatch/;
  await assert.rejects(webWorkerSpawner('/w.js')(init(2)).ready, expected);
  assert.equal(FakeWorker.made[0]!.terminated, true);
});

test('a script that cannot load (ErrorEvent without a message) rejects with a hint about URL and headers', async () => {
  g.Worker = FakeWorker;
  FakeWorker.script = (w) => w.onerror?.({ message: '', preventDefault() {} } as unknown as ErrorEvent);
  const expected = /could not be loaded \(wrong URL, or served without COEP\/CORP headers\?\)/;
  await assert.rejects(webWorkerSpawner('/missing.js')(init(1)).ready, expected);
});

test('an error after start-up does not terminate a running worker (the pool reports kernel errors)', async () => {
  g.Worker = FakeWorker;
  FakeWorker.script = (w) => w.reply('ready');
  await webWorkerSpawner('/w.js')(init(1)).ready;
  const w = FakeWorker.made[0]!;
  w.onerror?.({ message: 'late', preventDefault() {} } as unknown as ErrorEvent);
  assert.equal(w.terminated, false);
});

test('workers are available only with a Worker class and cross-origin isolation', () => {
  assert.equal(webWorkersAvailable(), false); // Node: no Worker global, not isolated
  g.Worker = FakeWorker;
  assert.equal(webWorkersAvailable(), false);
  g.crossOriginIsolated = true;
  assert.equal(webWorkersAvailable(), true);
  assert.ok(browserCores() >= 1);
});
