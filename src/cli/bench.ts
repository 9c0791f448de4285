// `lineage bench ...`: argument parsing only; the benchmarks live in bench/ (compiled to dist/bench).
//   lineage [--backend native|wasm] bench gemm --m M --n N --k K [--threads T] [--no-torch] [--json]
//   lineage bench attention --batch-heads BH --seq T --head-dim D [--causal] [--backward] [--threads T] [--json]
//   lineage bench elementwise --op add|exp|gelu|swiglu|bias-gelu [--path kernels|fused] [--size N] [--threads T] [--json]
//   lineage bench decode [--model DIR] --concurrency N --prompt-tokens P --max-tokens T [--draft-model DIR] [--threads T] [--json]
//   lineage bench serve [--model DIR | --url URL] [--concurrency 64] [--duration 60] [--max-tokens 64] [--threads T] [--json]
//   lineage bench llamacpp [--hidden 512 --layers 8 --heads 8 --kv-heads 4 --ffn 1408] [--threads 1,2] [--backends native,wasm] [--json]
//   lineage bench all [--threads 1,2] [--rounds 2] [--no-torch] [--json]
// The backend is native when its addon loads, else wasm (--backend / LINEAGE_BACKEND choose); every
// line names the backend that ran. Single benchmarks also run PyTorch on the same case in the same
// run (interleaved, best of 2 round medians each) and print the ratio, unless --no-torch.
import os from 'node:os';
import {
  ELEMENTWISE_OPS,
  benchAttention,
  benchElementwise,
  benchGemm,
  type BenchOpts,
  type ElementwiseOp,
  type ElementwisePath,
} from '../../bench/kernels.js';
import { runSuite } from '../../bench/suite.js';
import { TorchServer, torchAvailable } from '../../bench/torch-node.js';
import { requested } from './backend-node.js';
import { parseFlags, parseNumber } from './flags.js';

const USAGE = `usage (global: lineage --backend native|wasm bench ...; default native when built, else wasm):
  lineage bench gemm --m M --n N --k K [--threads T] [--variant auto|relaxed|simd] [--json]
  lineage bench attention --batch-heads BH --seq T --head-dim D [--causal] [--backward] [--threads T] [--json]
  lineage bench elementwise --op add|exp|gelu|swiglu|bias-gelu [--path kernels|fused] [--size N] [--threads T] [--json]
    (swiglu = silu(a) * b, bias-gelu = gelu(x + bias[4096]); chains default to --path fused, one kernel, and
    also print the unfused kernels' figure)
  lineage bench decode [--model DIR] --concurrency N --prompt-tokens P --max-tokens T [--draft-model DIR | --speculative mtp] [--speculative-tokens K] [--kv-dtype float32|float16|bfloat16|int8] [--single-requests K] [--rounds R] [--prompts text|random] [--threads T] [--json]
  lineage bench serve [--model DIR | --url URL] [--concurrency 64] [--duration 60] [--max-tokens 64] [--threads T] [--json]
  lineage bench llamacpp [--hidden 512 --layers 8 --heads 8 --kv-heads 4 --ffn 1408 --vocab 512] [--max-tokens 128] [--prompt-tokens 16] [--rounds 3] [--threads 1,2] [--backends native,wasm] [--json]
  lineage bench all [--threads 1,2] [--sweep 512,1024,2048,4096] [--rounds 2] [--no-torch] [--json]
Figures are medians of repeated runs after warm-up. gemm counts 2*M*N*K FLOPs, attention 4*BH*T^2*D
(--backward: forward + backward timed together, 12*BH*T^2*D).
Single benchmarks print the ratio to PyTorch measured in the same run (> 1: Lineage faster) unless --no-torch
(with --json only when --torch is given).`;

const VALUED = [
  'm',
  'n',
  'k',
  'threads',
  'variant',
  'batch-heads',
  'seq',
  'head-dim',
  'op',
  'path',
  'size',
  'sweep',
  'rounds',
  'min-seconds',
  // decode and serve
  'model',
  'draft-model',
  'speculative',
  'speculative-tokens',
  'kv-dtype',
  'concurrency',
  'prompt-tokens',
  'max-tokens',
  'single-requests',
  'prompts',
  'url',
  'duration',
  'prompt',
  'served-model',
  // llamacpp
  'hidden',
  'layers',
  'heads',
  'kv-heads',
  'ffn',
  'vocab',
  'backends',
];
const BOOLS = ['json', 'causal', 'backward', 'no-torch', 'torch'];

/** the shared parser (src/cli/flags.ts), flattened to name -> last value (booleans: 'true') */
function parse(argv: string[]): { sub: string | undefined; help: boolean; flags: Map<string, string> } {
  const f = parseFlags('bench', argv, VALUED, BOOLS, { positionals: 1, positionalName: 'benchmark name' });
  const flags = new Map<string, string>([...f.values].map(([k, v]) => [k, v.at(-1)!]));
  for (const b of f.bools) flags.set(b, 'true');
  return { sub: f.positionals[0], help: f.help, flags };
}

function int(flags: Map<string, string>, name: string, def?: number): number {
  const s = flags.get(name);
  if (s === undefined) {
    if (def === undefined) throw new Error(`--${name} is required\n${USAGE}`);
    return def;
  }
  return parseNumber(`--${name}`, s, { int: true, min: 1 });
}

function cores(): number {
  return typeof os.availableParallelism === 'function' ? os.availableParallelism() : os.cpus().length;
}

export async function benchCommand(argv: string[]): Promise<void> {
  const { sub, help, flags } = parse(argv);
  if (!sub || help) {
    console.log(USAGE);
    return;
  }
  const json = flags.has('json');
  const threads = sub === 'all' || sub === 'llamacpp' ? 0 : int(flags, 'threads', cores());
  // more threads than cores only time the OS scheduler (--threads 999 ran 100x slower, silently)
  if (threads > cores()) throw new Error(`--threads: at most this machine's ${cores()} cores, got ${threads}`);
  const variant = (flags.get('variant') ?? 'auto') as 'auto' | 'relaxed' | 'simd';
  if (!['auto', 'relaxed', 'simd'].includes(variant))
    throw new Error(`--variant must be auto, relaxed or simd (got '${variant}')`);
  const minSeconds = flags.has('min-seconds') ? Number(flags.get('min-seconds')) : undefined;
  const backend = await pickBackend();
  const o: BenchOpts = { threads, variant, minSeconds, backend };
  // text output compares with PyTorch by default; --json only with --torch (scripts and tests stay Python-free)
  const wantTorch = flags.has('torch') || (!json && !flags.has('no-torch'));
  const torch = wantTorch && sub !== 'all' && torchAvailable() ? await TorchServer.start() : null;
  try {
    switch (sub) {
      case 'gemm': {
        const [m, n, k] = [int(flags, 'm'), int(flags, 'n'), int(flags, 'k')];
        const { r, t } = await interleave(
          () => benchGemm(m, n, k, o),
          (x) => x.gflops,
          torch,
          { bench: 'gemm', m, n, k, threads },
          'gflops',
        );
        const line =
          `gemm ${r.m}x${r.n}x${r.k} threads=${r.threads} backend=${backendName(r.variant)}: ${r.gflops.toFixed(1)} GFLOP/s, ` +
          `${r.medianMs.toFixed(2)} ms median of ${r.reps}`;
        return report(json, r, t, line, r.gflops, 'GFLOP/s');
      }
      case 'attention': {
        const [bh, seq, d, causal] = [
          int(flags, 'batch-heads'),
          int(flags, 'seq'),
          int(flags, 'head-dim'),
          flags.has('causal'),
        ];
        const backward = flags.has('backward');
        const c = { bench: 'attention', batchHeads: bh, seq, headDim: d, causal, backward, threads };
        const { r, t } = await interleave(
          () => benchAttention(bh, seq, d, causal, o, backward),
          (x) => x.gflops,
          torch,
          c,
          'gflops',
        );
        const line =
          `attention${r.backward ? ' forward+backward' : ''} BH=${r.batchHeads} T=${r.seq} D=${r.headDim}${r.causal ? ' causal' : ''} threads=${r.threads} ` +
          `backend=${backendName(r.variant)}: ${r.gflops.toFixed(1)} GFLOP/s, ${r.medianMs.toFixed(2)} ms median of ${r.reps}, ` +
          `extra memory ${(r.peakBytes / 2 ** 20).toFixed(2)} MiB`;
        return report(json, r, t, line, r.gflops, 'GFLOP/s');
      }
      case 'elementwise': {
        const op = (flags.get('op') ?? 'add') as ElementwiseOp;
        if (!ELEMENTWISE_OPS.includes(op))
          throw new Error(`elementwise: --op must be one of ${ELEMENTWISE_OPS.join(', ')} (got '${op}')`);
        const chain = op === 'swiglu' || op === 'bias-gelu';
        const path = (flags.get('path') ?? (chain ? 'fused' : 'kernels')) as ElementwisePath;
        if (path !== 'fused' && path !== 'kernels')
          throw new Error(`elementwise: --path must be fused or kernels (got '${path}')`);
        const size = int(flags, 'size', 16 << 20);
        const c = { bench: 'elementwise', op, size, threads };
        const { r, t } = await interleave(
          () => benchElementwise(op, size, o, path),
          (x) => x.gbps,
          torch,
          c,
          'gbps',
        );
        const line =
          `${r.op} (${r.path}) ${r.size} floats threads=${r.threads} backend=${backendName(r.variant)}: ${r.gbps.toFixed(1)} GB/s, ` +
          `${r.medianMs.toFixed(2)} ms median of ${r.reps}`;
        if (chain && path === 'fused' && !json) {
          // the same chain as separate kernels, in the same run: what fusing saves
          const k = await benchElementwise(op, size, o, 'kernels');
          console.log(
            `${op} (kernels, unfused) ${size} floats threads=${k.threads}: ${k.gbps.toFixed(1)} GB/s, ${k.medianMs.toFixed(2)} ms; fused / unfused ${(r.gbps / k.gbps).toFixed(2)}x`,
          );
        }
        return report(json, r, t, line, r.gbps, 'GB/s');
      }
      default:
        break;
    }
  } finally {
    torch?.close();
  }
  switch (sub) {
    case 'decode': {
      const { decodeCommand } = await import('../../bench/decode-node.js');
      return decodeCommand(flags, threads, json, (n, d) => int(flags, n, d));
    }
    case 'llamacpp': {
      const { llamaCppCommand } = await import('../../bench/llamacpp-node.js');
      return llamaCppCommand(flags, json, (n, d) => int(flags, n, d));
    }
    case 'serve': {
      const { serveBenchCommand } = await import('../../bench/serve-node.js');
      return serveBenchCommand(flags, threads, json, (n, d) => int(flags, n, d));
    }
    case 'all': {
      const list = (s: string | undefined, def: number[]) =>
        s ? s.split(',').map((x) => int(new Map([['v', x]]), 'v')) : def;
      await runSuite({
        threads: list(flags.get('threads'), [1, 2]),
        sweep: list(flags.get('sweep'), [512, 1024, 2048, 4096]),
        torch: !flags.has('no-torch'),
        rounds: int(flags, 'rounds', 2),
        json,
        minSeconds,
        backend,
      });
      return;
    }
    default:
      throw new Error(`unknown benchmark '${sub}'\n${USAGE}`);
  }
}

/** --backend / LINEAGE_BACKEND, else native when its addon loads, else wasm */
async function pickBackend(): Promise<'native' | 'wasm'> {
  const want = requested();
  if (want === 'reference') throw new Error('bench: the reference backend is not benchmarked (choose native or wasm)');
  if (want) return want;
  const { loadNativeAddon } = await import('../backend/native/addon-node.js');
  return loadNativeAddon().addon ? 'native' : 'wasm';
}

/** Lineage and PyTorch alternately, 2 rounds each; keeps the best round median of each side */
async function interleave<R extends { cpuMs?: number }>(
  ours: () => Promise<R>,
  value: (r: R) => number,
  torch: TorchServer | null,
  c: object,
  key: 'gflops' | 'gbps',
): Promise<{ r: R; t: { value: number; cpuMs: number } | null }> {
  let best: R | null = null;
  let theirs: { value: number; cpuMs: number } | null = null;
  for (let round = 0; round < (torch ? 2 : 1); round++) {
    const r = await ours();
    if (best === null || value(r) > value(best)) best = r;
    if (torch) {
      const t = await torch.run(c);
      const v = t[key] ?? 0;
      if (!theirs || v > theirs.value) theirs = { value: v, cpuMs: (t as { cpuMs?: number }).cpuMs ?? 0 };
    }
  }
  return { r: best!, t: theirs };
}

/**
 * Prints the wall-clock ratio and, on a shared machine the steadier one, the CPU-time ratio (same work,
 * CPU seconds of this process over all its threads vs PyTorch's; our idle pool threads spin briefly, which
 * counts against us).
 */
function report(
  json: boolean,
  r: { cpuMs?: number },
  torch: { value: number; cpuMs: number } | null,
  line: string,
  ours: number,
  unit: string,
): void {
  const ratio = torch ? ours / torch.value : null;
  const cpuRatio = torch && r.cpuMs ? torch.cpuMs / r.cpuMs : null;
  if (json) {
    console.log(
      JSON.stringify({ ...r, torch: torch?.value ?? null, torchCpuMs: torch?.cpuMs ?? null, ratio, cpuRatio }),
    );
    return;
  }
  if (!torch) return console.log(line);
  const cpu = cpuRatio ? `, CPU-time ratio ${cpuRatio.toFixed(2)}` : '';
  console.log(`${line}; PyTorch ${torch.value.toFixed(1)} ${unit}, ratio ${ratio!.toFixed(2)}${cpu}`);
}

/** wasm results carry the build ('relaxed' / 'simd'), native ones 'native-<cpu target>' */
function backendName(variant: string): string {
  return variant.startsWith('native') ? variant : `wasm-${variant}`;
}
