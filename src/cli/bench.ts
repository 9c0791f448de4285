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

const USAGE = `usage:
  lineage bench gemm --m M --n N --k K [--threads T] [--variant auto|relaxed|simd] [--json]
  lineage bench attention --batch-heads BH --seq T --head-dim D [--causal] [--threads T] [--json]
  lineage bench elementwise --op add|exp [--size N] [--threads T] [--json]
  lineage bench decode [--model DIR] --concurrency N --prompt-tokens P --max-tokens T [--draft-model DIR] [--single-requests K] [--threads T] [--json]
  lineage bench serve [--model DIR | --url URL] [--concurrency 64] [--duration 60] [--max-tokens 64] [--threads T] [--json]
  lineage bench all [--threads 1,2] [--sweep 512,1024,2048,4096] [--rounds 2] [--no-torch] [--json]
Figures are medians of repeated runs after warm-up. gemm counts 2*M*N*K FLOPs, attention 4*BH*T^2*D.`;

const BOOL = new Set(['json', 'causal', 'no-torch', 'help']);

function parse(argv: string[]): { sub: string | undefined; flags: Map<string, string> } {
  const [sub, ...rest] = argv;
  const flags = new Map<string, string>();
  for (let i = 0; i < rest.length; i++) {
    const a = rest[i]!;
    if (!a.startsWith('--')) throw new Error(`unexpected argument '${a}'\n${USAGE}`);
    const eq = a.indexOf('=');
    if (eq > 0) {
      flags.set(a.slice(2, eq), a.slice(eq + 1));
      continue;
    }
    const name = a.slice(2);
    if (BOOL.has(name)) flags.set(name, 'true');
    else {
      const v = rest[++i];
      if (v === undefined) throw new Error(`--${name} needs a value`);
      flags.set(name, v);
    }
  }
  return { sub, flags };
}

function int(flags: Map<string, string>, name: string, def?: number): number {
  const s = flags.get(name);
  if (s === undefined) {
    if (def === undefined) throw new Error(`--${name} is required\n${USAGE}`);
    return def;
  }
  const v = Number(s);
  if (!Number.isInteger(v) || v < 1) throw new Error(`--${name} must be a positive integer (got '${s}')`);
  return v;
}

function cores(): number {
  return typeof os.availableParallelism === 'function' ? os.availableParallelism() : os.cpus().length;
}

export async function benchCommand(argv: string[]): Promise<void> {
  const { sub, flags } = parse(argv);
  if (!sub || sub === '--help' || flags.has('help')) {
    console.log(USAGE);
    return;
  }
  const json = flags.has('json');
  const threads = int(flags, 'threads', cores());
  const variant = (flags.get('variant') ?? 'auto') as 'auto' | 'relaxed' | 'simd';
  if (!['auto', 'relaxed', 'simd'].includes(variant)) throw new Error(`--variant must be auto, relaxed or simd (got '${variant}')`);
  const minSeconds = flags.has('min-seconds') ? Number(flags.get('min-seconds')) : undefined;
  const o = { threads, variant, minSeconds };
  switch (sub) {
    case 'gemm': {
      const r = await benchGemm(int(flags, 'm'), int(flags, 'n'), int(flags, 'k'), o);
      console.log(json ? JSON.stringify(r) : `gemm ${r.m}x${r.n}x${r.k} threads=${r.threads} (${r.variant}): ${r.gflops.toFixed(1)} GFLOP/s, ${r.medianMs.toFixed(2)} ms median of ${r.reps}`);
      return;
    }
    case 'attention': {
      const r = await benchAttention(int(flags, 'batch-heads'), int(flags, 'seq'), int(flags, 'head-dim'), flags.has('causal'), o);
      console.log(
        json
          ? JSON.stringify(r)
          : `attention BH=${r.batchHeads} T=${r.seq} D=${r.headDim}${r.causal ? ' causal' : ''} threads=${r.threads} (${r.variant}): ` +
              `${r.gflops.toFixed(1)} GFLOP/s, ${r.medianMs.toFixed(2)} ms median of ${r.reps}, extra memory ${(r.peakBytes / 2 ** 20).toFixed(2)} MiB`,
      );
      return;
    }
    case 'elementwise': {
      const op = flags.get('op') ?? 'add';
      if (op !== 'add' && op !== 'exp') throw new Error(`elementwise: --op must be add or exp (got '${op}')`);
      const r = await benchElementwise(op, int(flags, 'size', 16 << 20), o);
      console.log(json ? JSON.stringify(r) : `${r.op} ${r.size} floats threads=${r.threads} (${r.variant}): ${r.gbps.toFixed(1)} GB/s, ${r.medianMs.toFixed(2)} ms median of ${r.reps}`);
      return;
    }
    case 'decode': {
      const { decodeCommand } = await import('../../bench/decode-node.js');
      await decodeCommand(flags, threads, json, (n, d) => int(flags, n, d));
      return;
    }
    case 'serve': {
      const { serveBenchCommand } = await import('../../bench/serve-node.js');
      await serveBenchCommand(flags, threads, json, (n, d) => int(flags, n, d));
      return;
    }
    case 'all': {
      const list = (s: string | undefined, def: number[]) => (s ? s.split(',').map((x) => int(new Map([['v', x]]), 'v')) : def);
      await runSuite({
        threads: list(flags.get('threads'), [1, 2]),
        sweep: list(flags.get('sweep'), [512, 1024, 2048, 4096]),
        torch: !flags.has('no-torch'),
        rounds: int(flags, 'rounds', 2),
        json,
        minSeconds,
      });
      return;
    }
    default:
      throw new Error(`unknown benchmark '${sub}'\n${USAGE}`);
  }
}
