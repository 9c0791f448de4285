// The engine off the main thread (Node): a worker_threads worker loads the model directory and runs an
// Engine; `EngineWorker` proxies the same interface — add(request) → an async-iterable handle of token
// events, abort(id), stats() (the snapshot the worker sent with its latest events) — so a server's event
// loop never waits on a forward pass. Requests cross the thread boundary as structured clones, so a
// per-request logitsProcessor function cannot be sent: give constrained decoding as data (`constraint`).
//
//   const w = await EngineWorker.start({ modelDir: 'models/shakespeare-char', kvMemoryBytes: 32 << 20 });
//   for await (const ev of w.add({ prompt: 'ROMEO:', maxTokens: 20 })) process.stdout.write(ev.text);
//   await w.close();
import { Worker, isMainThread, parentPort, workerData } from 'node:worker_threads';
import { setBackend } from '../../tensor/engine.js';
import { loadModelDir } from '../model-dir-node.js';
import { loadAdapterDir } from '../../align/lora-node.js';
import { Engine, RequestHandle, type EngineOptions, type EngineRequest, type EngineStats } from './engine.js';
import type { TokenEvent } from './sequence.js';
import { embedTokens, type Pooling } from '../embed.js';
import type { LanguageModel } from '../../models/model.js';

export interface EngineWorkerOptions extends Omit<EngineOptions, 'tokenizer' | 'draftModel' | 'autoRun'> {
  modelDir: string;
  draftModelDir?: string;
  /** a PEFT LoRA adapter directory applied on top of the model */
  loraDir?: string;
  /** WebAssembly backend threads in the worker (default 1; 0 = the reference backend) */
  threads?: number;
}

type ToWorker =
  | { type: 'add'; req: EngineRequest }
  | { type: 'abort'; id: string }
  | { type: 'embed'; rid: number; inputs: number[][]; pooling: Pooling }
  | { type: 'close' };
type FromWorker =
  | { type: 'ready'; stats: EngineStats }
  | { type: 'added'; id: string; stats: EngineStats }
  | { type: 'event'; event: TokenEvent; stats: EngineStats }
  | { type: 'error'; id: string | null; message: string }
  | { type: 'embedded'; rid: number; vectors: Float32Array[] | null; message?: string }
  | { type: 'closed' };

const EMPTY: EngineStats = {
  running: 0,
  waiting: 0,
  kvBlocksUsed: 0,
  kvBlocksTotal: 0,
  prefixCacheHits: 0,
  acceptanceRate: 0,
  preemptions: 0,
};

export class EngineWorker {
  private readonly handles = new Map<string, RequestHandle>();
  private snapshot: EngineStats = EMPTY;
  /** sequences (n per request) posted to the worker and not yet acknowledged: not in any snapshot yet */
  private readonly unacked = new Map<string, number>();
  private nextId = 0;
  private closed: (() => void) | null = null;
  /** set by the first close(): later calls get the same promise, add() refuses */
  private closing: Promise<void> | null = null;
  private readonly embeds = new Map<number, { ok: (v: Float32Array[]) => void; fail: (e: Error) => void }>();
  private nextEmbed = 0;

  private constructor(private readonly worker: Worker) {
    worker.on('message', (m: FromWorker) => this.receive(m));
    worker.on('error', (e) => this.failAll(e));
  }

  /** spawns the worker and waits until its model is loaded (errors of loading reject here). An encoder
   * model (BERT) gets no engine: the worker then only computes embeddings. */
  static async start(opts: EngineWorkerOptions): Promise<EngineWorker> {
    const worker = new Worker(new URL(import.meta.url), { workerData: { lineageEngine: opts } });
    const proxy = new EngineWorker(worker);
    await new Promise<void>((resolve, reject) => {
      const onMsg = (m: FromWorker) => {
        if (m.type === 'ready') [proxy.snapshot] = [m.stats];
        else if (m.type === 'error' && m.id === null) reject(new Error(m.message));
        else return;
        worker.off('message', onMsg);
        resolve();
      };
      worker.on('message', onMsg);
      worker.once('error', reject);
    });
    return proxy;
  }

  /** queues a request in the worker; a bad request makes the handle's iterator throw its error */
  add(req: EngineRequest): RequestHandle {
    if (this.closing) throw new Error('EngineWorker: add() after close()');
    if (req.logitsProcessor)
      throw new Error('EngineWorker: a logitsProcessor function cannot cross to the worker thread');
    const id = req.id ?? `w-${this.nextId++}`;
    if (this.handles.has(id)) throw new Error(`engine: request id "${id}" is already in use`);
    // leaving its `for await` early aborts the request in the worker, as with Engine
    const h = new RequestHandle(
      id,
      req.n ?? 1,
      () => {},
      () => void this.abort(id),
    );
    this.handles.set(id, h);
    this.unacked.set(id, req.n ?? 1);
    this.post({ type: 'add', req: { ...req, id } });
    return h;
  }

  /** pooled, L2-normalised embeddings of token-id inputs, computed on the worker thread */
  embed(inputs: readonly (readonly number[])[], pooling: Pooling): Promise<Float32Array[]> {
    const rid = this.nextEmbed++;
    return new Promise((ok, fail) => {
      this.embeds.set(rid, { ok, fail });
      this.post({ type: 'embed', rid, inputs: inputs.map((x) => [...x]), pooling });
    });
  }

  abort(id: string): boolean {
    if (!this.handles.has(id) || this.closing) return false;
    this.post({ type: 'abort', id });
    return true;
  }

  /** the latest snapshot the worker sent; `waiting` also counts the requests posted since that the worker
   * has not acknowledged yet (so that a burst of requests cannot all pass a queue limit in between) */
  stats(): EngineStats {
    let pending = 0;
    for (const n of this.unacked.values()) pending += n;
    return { ...this.snapshot, waiting: this.snapshot.waiting + pending };
  }

  /** disposes the worker's engine and ends the thread; safe to call again (the same promise) */
  close(): Promise<void> {
    this.closing ??= (async () => {
      const done = new Promise<void>((r) => (this.closed = r));
      this.post({ type: 'close' });
      await done;
      await this.worker.terminate();
    })();
    return this.closing;
  }

  private post(m: ToWorker): void {
    this.worker.postMessage(m);
  }

  private receive(m: FromWorker): void {
    if (m.type === 'added') {
      this.unacked.delete(m.id);
      this.snapshot = m.stats;
    } else if (m.type === 'event') {
      this.snapshot = m.stats;
      const h = this.handles.get(m.event.id);
      h?.push(m.event);
      if (h?.done) this.handles.delete(m.event.id);
    } else if (m.type === 'error' && m.id !== null) {
      this.unacked.delete(m.id);
      this.handles.get(m.id)?.fail(new Error(m.message));
      this.handles.delete(m.id);
    } else if (m.type === 'embedded') {
      const p = this.embeds.get(m.rid);
      this.embeds.delete(m.rid);
      if (m.vectors) p?.ok(m.vectors);
      else p?.fail(new Error(m.message ?? 'embedding failed'));
    } else if (m.type === 'closed') this.closed?.();
  }

  private failAll(e: Error): void {
    for (const h of this.handles.values()) h.fail(e);
    this.handles.clear();
    this.unacked.clear();
    for (const p of this.embeds.values()) p.fail(e);
    this.embeds.clear();
  }
}

// ---- the worker side ----

async function serve(opts: EngineWorkerOptions): Promise<void> {
  const port = parentPort!;
  const send = (m: FromWorker) => port.postMessage(m);
  try {
    if ((opts.threads ?? 1) > 0) {
      const mod = await import('../../backend/wasm/backend.js');
      setBackend(await mod.createWasmBackend({ threads: opts.threads ?? 1 }));
    }
    const { model, tokenizer } = await loadModelDir(opts.modelDir);
    if (opts.loraDir) loadAdapterDir(model, opts.loraDir);
    const draftModel = opts.draftModelDir ? (await loadModelDir(opts.draftModelDir)).model : null;
    const { modelDir: _m, draftModelDir: _d, threads: _t, loraDir: _l, ...engineOpts } = opts;
    // encoders only embed; every generating family gets an engine
    const engine = model.config.arch === 'encoder' ? null : new Engine(model, { ...engineOpts, tokenizer, draftModel });
    port.on('message', (m: ToWorker) => {
      if (m.type === 'close') return (engine?.dispose(), send({ type: 'closed' }));
      if (m.type === 'embed') return void send(embedMessage(model, m.rid, m.inputs, m.pooling));
      if (m.type === 'abort') return void engine?.abort(m.id);
      try {
        if (!engine) throw new Error(`${model.config.family} is an encoder: it serves embeddings, not generation`);
        const h = engine.add(m.req);
        send({ type: 'added', id: h.id, stats: engine.stats() });
        void (async () => {
          for await (const event of h) send({ type: 'event', event, stats: engine.stats() });
        })().catch((e: Error) => send({ type: 'error', id: h.id, message: e.message }));
      } catch (e) {
        send({ type: 'error', id: m.req.id!, message: (e as Error).message });
      }
    });
    send({ type: 'ready', stats: engine ? engine.stats() : EMPTY });
  } catch (e) {
    send({ type: 'error', id: null, message: (e as Error).message });
  }
}

function embedMessage(model: LanguageModel, rid: number, inputs: number[][], pooling: Pooling): FromWorker {
  try {
    return { type: 'embedded', rid, vectors: embedTokens(model, inputs, { pooling }) };
  } catch (e) {
    return { type: 'embedded', rid, vectors: null, message: (e as Error).message };
  }
}

const data = workerData as { lineageEngine?: EngineWorkerOptions } | null;
if (!isMainThread && data?.lineageEngine) void serve(data.lineageEngine);
