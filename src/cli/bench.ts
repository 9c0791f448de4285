// `lineage bench ...`: argument parsing only; the benchmarks live in bench/ (compiled to dist/bench).
//   lineage bench gemm --m M --n N --k K [--threads T] [--json]
//   lineage bench attention --batch-heads BH --seq T --head-dim D [--causal] [--threads T] [--json]
//   lineage bench elementwise --op add|exp [--size N] [--threads T] [--json]
//   lineage bench serve [--model DIR | --url URL] [--concurrency 64] [--duration 60] [--max-tokens 64] [--threads T] [--json]
//   lineage bench decode [--model DIR] --concurrency N --prompt-tokens P --max-tokens T [--draft-model DIR] [--single-requests K] [--threads T] [--json]
//   lineage bench all [--threads 1,2] [--rounds 2] [--no-torch] [--json]
import os from 'node:os';
import { benchAttention, benchElementwise, benchGemm } from '../../bench/kernels.js';
import { runSuite } from '../../bench/suite.js';
import { flagChoice, flagNumber, flagNumberList, parseFlags, type ParsedFlags } from './flags.js';

const USAGE = `usage:
  lineage bench gemm --m M --n N --k K [--threads T] [--variant auto|relaxed|simd] [--json]
  lineage bench attention --batch-heads BH --seq T --head-dim D [--causal] [--threads T] [--json]
  lineage bench elementwise --op add|exp [--size N] [--threads T] [--json]
  lineage bench decode [--model DIR] --concurrency N --prompt-tokens P --max-tokens T [--draft-model DIR] [--single-requests K] [--threads T] [--json]
  lineage bench serve [--model DIR | --url URL] [--concurrency 64] [--duration 60] [--max-tokens 64] [--threads T] [--json]
  lineage bench all [--threads 1,2] [--sweep 512,1024,2048,4096] [--rounds 2] [--no-torch] [--json]
Figures are medians of repeated runs after warm-up. gemm counts 2*M*N*K FLOPs, attention 4*BH*T^2*D.`;

const VALUED = [
  'm', 'n', 'k', 'threads', 'variant', 'batch-heads', 'seq', 'head-dim', 'op', 'size', 'sweep', 'rounds', 'min-seconds',
  // decode and serve
  'model', 'draft-model', 'concurrency', 'prompt-tokens', 'max-tokens', 'single-requests', 'url', 'duration', 'prompt', 'served-model',
];
const BOOLS = ['json', 'causal', 'no-torch'];

/** a required (no default) or defaulted positive integer flag */
function int(f: ParsedFlags, name: string, def?: number): number {
  const v = flagNumber(f, name, { int: true, min: 1 });
  if (v !== undefined) return v;
  if (def === undefined) throw new Error(`--${name} N is required\n${USAGE}`);
  return def;
}

function cores(): number {
  return typeof os.availableParallelism === 'function' ? os.availableParallelism() : os.cpus().length;
}

export async function benchCommand(argv: string[]): Promise<void> {
  const f = parseFlags('bench', argv, VALUED, BOOLS, { positionals: 1, positionalName: 'benchmark name' });
  const sub = f.positionals[0];
  if (!sub || f.help) {
    console.log(USAGE);
    return;
  }
  const json = f.bools.has('json');
  const threads = sub === 'all' ? 0 : int(f, 'threads', cores());
  const variant = flagChoice(f, 'variant', ['auto', 'relaxed', 'simd'] as const) ?? 'auto';
  const minSeconds = flagNumber(f, 'min-seconds', { min: 0 });
  const o = { threads, variant, minSeconds };
  // the decode and serve benches take their flags as name -> last value
  const flags = new Map<string, string>([...f.values].map(([k, v]) => [k, v.at(-1)!]));
  switch (sub) {
    case 'gemm': {
      const r = await benchGemm(int(f, 'm'), int(f, 'n'), int(f, 'k'), o);
      console.log(json ? JSON.stringify(r) : `gemm ${r.m}x${r.n}x${r.k} threads=${r.threads} (${r.variant}): ${r.gflops.toFixed(1)} GFLOP/s, ${r.medianMs.toFixed(2)} ms median of ${r.reps}`);
      return;
    }
    case 'attention': {
      const r = await benchAttention(int(f, 'batch-heads'), int(f, 'seq'), int(f, 'head-dim'), f.bools.has('causal'), o);
      console.log(
        json
          ? JSON.stringify(r)
          : `attention BH=${r.batchHeads} T=${r.seq} D=${r.headDim}${r.causal ? ' causal' : ''} threads=${r.threads} (${r.variant}): ` +
              `${r.gflops.toFixed(1)} GFLOP/s, ${r.medianMs.toFixed(2)} ms median of ${r.reps}, extra memory ${(r.peakBytes / 2 ** 20).toFixed(2)} MiB`,
      );
      return;
    }
    case 'elementwise': {
      const op = flagChoice(f, 'op', ['add', 'exp'] as const) ?? 'add';
      const r = await benchElementwise(op, int(f, 'size', 16 << 20), o);
      console.log(json ? JSON.stringify(r) : `${r.op} ${r.size} floats threads=${r.threads} (${r.variant}): ${r.gbps.toFixed(1)} GB/s, ${r.medianMs.toFixed(2)} ms median of ${r.reps}`);
      return;
    }
    case 'decode': {
      const { decodeCommand } = await import('../../bench/decode-node.js');
      await decodeCommand(flags, threads, json, (n, d) => int(f, n, d));
      return;
    }
    case 'serve': {
      const { serveBenchCommand } = await import('../../bench/serve-node.js');
      await serveBenchCommand(flags, threads, json, (n, d) => int(f, n, d));
      return;
    }
    case 'all': {
      await runSuite({
        threads: flagNumberList(f, 'threads', { int: true, min: 1 }) ?? [1, 2],
        sweep: flagNumberList(f, 'sweep', { int: true, min: 1 }) ?? [512, 1024, 2048, 4096],
        torch: !f.bools.has('no-torch'),
        rounds: int(f, 'rounds', 2),
        json,
        minSeconds,
      });
      return;
    }
    default:
      throw new Error(`unknown benchmark '${sub}'\n${USAGE}`);
  }
}
