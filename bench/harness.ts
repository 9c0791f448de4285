// Timing helpers shared by the benchmarks: warm-up, then the median of repeated runs.

export interface Timing {
  /** median seconds per run */
  seconds: number;
  /** fastest run, seconds */
  best: number;
  reps: number;
  /** process CPU time (all threads) per run, seconds: shows how much of the wall time was computing */
  cpuSeconds: number;
}

/**
 * Runs `fn` `warmup` times, then repeatedly until `reps` runs and at least `minSeconds` have passed
 * (capped at maxReps); returns the median.
 */
export function timeIt(
  fn: () => void,
  opts: { warmup?: number; reps?: number; minSeconds?: number; maxReps?: number } = {},
): Timing {
  const warmup = opts.warmup ?? 2;
  const reps = opts.reps ?? 5;
  const minSeconds = opts.minSeconds ?? 0.3;
  const maxReps = opts.maxReps ?? 50;
  for (let i = 0; i < warmup; i++) fn();
  const times: number[] = [];
  let total = 0;
  const cpu0 = process.cpuUsage();
  while (times.length < reps || (total < minSeconds && times.length < maxReps)) {
    const t0 = performance.now();
    fn();
    const dt = (performance.now() - t0) / 1000;
    times.push(dt);
    total += dt;
  }
  const cpu = process.cpuUsage(cpu0);
  const cpuSeconds = (cpu.user + cpu.system) / 1e6 / times.length;
  times.sort((a, b) => a - b);
  const mid = times.length >> 1;
  const median = times.length % 2 ? times[mid]! : (times[mid - 1]! + times[mid]!) / 2;
  return { seconds: median, best: times[0]!, reps: times.length, cpuSeconds };
}

/** deterministic fill in [-0.5, 0.5) */
export function fillRandom(a: Float32Array, seed = 1): void {
  let s = seed >>> 0 || 1;
  for (let i = 0; i < a.length; i++) {
    s ^= s << 13;
    s >>>= 0;
    s ^= s >>> 17;
    s ^= s << 5;
    s >>>= 0;
    a[i] = s / 4294967296 - 0.5;
  }
}
