// Thread pool over one shared WebAssembly.Memory, runtime-agnostic (Node worker_threads and Web
// Workers plug in through `SpawnWorker`). Every worker instantiates the same module on the same
// memory; a job is "call export F(tid, nth, ...args)" on threads 0..nth-1, thread 0 being the caller.
//
// Dispatch uses Atomics on a small control SharedArrayBuffer: the caller writes the job, bumps each
// participant's mailbox word and notifies it, runs its own share, then waits for the pending count
// to reach zero. Each worker sleeps on its own mailbox word, so workers not taking part in a job are
// never woken and never read a job that is being rewritten.

/** control words (Int32 indices) */
const PENDING = 0;
const FN = 1;
const NARGS = 2;
const NTH = 3;
const SHUTDOWN = 4;
const ERROR = 5;
const MAILBOX = 16; // MAILBOX + tid: generation of the last job posted to worker tid
const MAX_THREADS = 64;
const ARGS_BYTE = (MAILBOX + MAX_THREADS) * 4;
export const MAX_ARGS = 40;
const CTRL_BYTES = ARGS_BYTE + MAX_ARGS * 8 + 1024; // + error message bytes

/** What a worker needs to start: sent once through workerData / postMessage. */
export interface WorkerInit {
  module: WebAssembly.Module;
  memory: WebAssembly.Memory;
  ctrl: SharedArrayBuffer;
  tid: number;
  fns: readonly string[];
}

/** The part of a Worker the pool uses (Node's Worker and the Web Worker both fit via adapters). */
export interface WorkerHandle {
  /** resolves once the worker has instantiated the module */
  ready: Promise<void>;
  terminate(): Promise<unknown> | void;
}
export type SpawnWorker = (init: WorkerInit) => WorkerHandle;

export function createControl(): SharedArrayBuffer {
  return new SharedArrayBuffer(CTRL_BYTES);
}

type Kernel = (...args: number[]) => void;

/** Worker side: instantiate, then serve jobs until shutdown. Blocks its thread in Atomics.wait. */
export function serveJobs(init: WorkerInit, exports: Record<string, unknown>): void {
  const ctrl = new Int32Array(init.ctrl);
  const args = new Float64Array(init.ctrl, ARGS_BYTE, MAX_ARGS);
  const fns = init.fns.map((f) => exports[f] as Kernel);
  const box = MAILBOX + init.tid;
  // mailboxes start at 0 on a fresh control buffer; reading the word here instead would race with a
  // job posted right after this worker reported ready
  let seen = 0;
  for (;;) {
    Atomics.wait(ctrl, box, seen);
    seen = Atomics.load(ctrl, box);
    if (Atomics.load(ctrl, SHUTDOWN)) return;
    const n = ctrl[NARGS]!;
    const a = new Array<number>(n + 2);
    a[0] = init.tid;
    a[1] = ctrl[NTH]!;
    for (let i = 0; i < n; i++) a[i + 2] = args[i]!;
    try {
      fns[ctrl[FN]!]!(...a);
    } catch (e) {
      recordError(init.ctrl, `thread ${init.tid}: ${e instanceof Error ? e.message : String(e)}`);
    }
    if (Atomics.sub(ctrl, PENDING, 1) === 1) Atomics.notify(ctrl, PENDING);
  }
}

function recordError(ctrlBuf: SharedArrayBuffer, msg: string): void {
  const ctrl = new Int32Array(ctrlBuf);
  if (Atomics.compareExchange(ctrl, ERROR, 0, 1) !== 0) return;
  const bytes = new TextEncoder().encode(msg.slice(0, 500));
  const dst = new Uint8Array(ctrlBuf, ARGS_BYTE + MAX_ARGS * 8, 1024);
  dst.fill(0);
  dst.set(bytes.subarray(0, 1023));
}

function canAtomicsWait(): boolean {
  try {
    Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 1, 0);
    return true;
  } catch {
    return false;
  }
}

export class Pool {
  private readonly ctrl: Int32Array;
  private readonly args: Float64Array;
  private readonly fnIndex = new Map<string, number>();
  private readonly kernels: Kernel[];
  private gen = 0;
  /** jobs dispatched to more than one thread */
  parallelJobs = 0;
  /** browsers forbid Atomics.wait on the main thread: spin there instead */
  private readonly canBlock = canAtomicsWait();
  private busy = false;
  private disposed = false;

  private constructor(
    readonly ctrlBuf: SharedArrayBuffer,
    private readonly exports: Record<string, unknown>,
    private readonly workers: WorkerHandle[],
    fns: readonly string[],
  ) {
    this.ctrl = new Int32Array(ctrlBuf);
    this.args = new Float64Array(ctrlBuf, ARGS_BYTE, MAX_ARGS);
    fns.forEach((f, i) => this.fnIndex.set(f, i));
    this.kernels = fns.map((f) => exports[f] as Kernel);
  }

  /** threads = 1 + number of workers. */
  get threads(): number {
    return this.workers.length + 1;
  }

  static async create(
    module: WebAssembly.Module,
    memory: WebAssembly.Memory,
    exports: Record<string, unknown>,
    fns: readonly string[],
    workers: number,
    spawn: SpawnWorker | null,
  ): Promise<Pool> {
    const ctrl = createControl();
    const handles: WorkerHandle[] = [];
    if (spawn && workers > 0) {
      if (workers + 1 > MAX_THREADS)
        throw new Error(`wasm backend: at most ${MAX_THREADS} threads (asked for ${workers + 1})`);
      for (let t = 1; t <= workers; t++) handles.push(spawn({ module, memory, ctrl, tid: t, fns }));
      await Promise.all(handles.map((h) => h.ready));
    }
    return new Pool(ctrl, exports, handles, fns);
  }

  /** Runs export `fn`(tid, nth, ...args) on nth threads (the caller is thread 0) and waits for all. */
  run(fn: string, nth: number, args: readonly number[]): void {
    const idx = this.fnIndex.get(fn);
    if (idx === undefined) throw new Error(`wasm backend: unknown kernel export '${fn}'`);
    nth = Math.max(1, Math.min(nth | 0, this.threads));
    if (nth === 1 || this.busy) {
      // nested/reentrant use (not expected) stays on this thread
      this.kernels[idx]!(0, 1, ...args);
      return;
    }
    if (args.length > MAX_ARGS) throw new Error(`wasm backend: ${fn}: too many arguments (${args.length})`);
    const c = this.ctrl;
    this.busy = true;
    this.parallelJobs++;
    try {
      for (let i = 0; i < args.length; i++) this.args[i] = args[i]!;
      c[FN] = idx;
      c[NARGS] = args.length;
      c[NTH] = nth;
      Atomics.store(c, ERROR, 0);
      Atomics.store(c, PENDING, nth - 1);
      this.gen = (this.gen + 1) | 0;
      for (let t = 1; t < nth; t++) {
        Atomics.store(c, MAILBOX + t, this.gen);
        Atomics.notify(c, MAILBOX + t, 1);
      }
      let err: unknown = null;
      try {
        this.kernels[idx]!(0, nth, ...args);
      } catch (e) {
        err = e;
      }
      // short spin (the other threads usually finish at about the same time), then sleep
      for (let i = 0; i < 2000 && Atomics.load(c, PENDING) !== 0; i++);
      for (;;) {
        const p = Atomics.load(c, PENDING);
        if (p === 0) break;
        if (this.canBlock) Atomics.wait(c, PENDING, p);
      }
      if (err) throw err;
      if (Atomics.load(c, ERROR)) {
        const raw = new Uint8Array(this.ctrlBuf, ARGS_BYTE + MAX_ARGS * 8, 1024).slice();
        const end = raw.indexOf(0);
        throw new Error(
          `wasm backend: ${fn} failed on a worker: ${new TextDecoder().decode(raw.subarray(0, end < 0 ? raw.length : end))}`,
        );
      }
    } finally {
      this.busy = false;
    }
  }

  /** Stops and terminates the workers; the pool runs everything on the caller afterwards. */
  async dispose(): Promise<void> {
    if (this.disposed) return;
    this.disposed = true;
    Atomics.store(this.ctrl, SHUTDOWN, 1);
    for (let t = 1; t <= this.workers.length; t++) {
      Atomics.add(this.ctrl, MAILBOX + t, 1);
      Atomics.notify(this.ctrl, MAILBOX + t);
    }
    await Promise.all(this.workers.map((w) => w.terminate()));
    this.workers.length = 0;
  }
}
