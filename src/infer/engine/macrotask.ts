// A zero-delay macrotask for the engine's self-driving loop. `setTimeout(fn, 0)` waits at least 1 ms in
// Node (and 4 ms in browsers once nested), which at single-stream decode speeds (~1-2 ms a step) idled
// the engine for a third to half of its wall time. setImmediate (Node) runs after the event loop's I/O
// poll and MessageChannel (browsers, workers) is a task too, so timers, I/O and other events still run
// between two steps: the host stays responsive, without the clamp.
export type Macrotask = (fn: () => void) => void;

let channel: Macrotask | null = null;

/** a MessageChannel-backed queue (made once, on first use: an open port can keep some hosts alive) */
function viaChannel(): Macrotask {
  if (channel) return channel;
  const ch = new MessageChannel();
  const queue: (() => void)[] = [];
  ch.port1.onmessage = () => queue.shift()?.();
  return (channel = (fn) => {
    queue.push(fn);
    ch.port2.postMessage(null);
  });
}

/** runs fn in a new macrotask, as soon as the host's event loop has had one turn */
export function macrotask(fn: () => void): void {
  const g = globalThis as { setImmediate?: (f: () => void) => unknown };
  if (typeof g.setImmediate === 'function') return void g.setImmediate(fn);
  if (typeof MessageChannel === 'function') return viaChannel()(fn);
  setTimeout(fn, 0);
}
