// `lineage bench all`: the benchmark suite, with PyTorch run for the same shapes in the same run
// when /usr/bin/python3 can import torch.
import { benchAttention, benchElementwise, benchGemm, type AttentionResult, type ElementwiseResult, type GemmResult } from './kernels.js';
import { runTorch, torchAvailable } from './torch-node.js';

type Result = GemmResult | AttentionResult | ElementwiseResult;
type Case =
  | { bench: 'gemm'; m: number; n: number; k: number; threads: number }
  | { bench: 'attention'; batchHeads: number; seq: number; headDim: number; causal: boolean; threads: number }
  | { bench: 'elementwise'; op: 'add' | 'exp'; size: number; threads: number };

export interface SuiteOptions {
  threads: number[];
  torch: boolean;
  json: boolean;
  /** sequence lengths of the attention memory sweep */
  sweep: number[];
  minSeconds?: number;
}

export function suiteCases(o: SuiteOptions): { main: Case[]; sweep: Case[] } {
  const main: Case[] = [];
  for (const t of o.threads) {
    main.push({ bench: 'gemm', m: 1024, n: 1024, k: 1024, threads: t });
    main.push({ bench: 'gemm', m: 512, n: 768, k: 3072, threads: t });
    for (const causal of [false, true]) main.push({ bench: 'attention', batchHeads: 12, seq: 512, headDim: 64, causal, threads: t });
    for (const op of ['add', 'exp'] as const) main.push({ bench: 'elementwise', op, size: 16 << 20, threads: t });
  }
  const tmax = Math.max(...o.threads);
  const sweep: Case[] = o.sweep.map((seq) => ({ bench: 'attention', batchHeads: 4, seq, headDim: 64, causal: true, threads: tmax }));
  return { main, sweep };
}

async function runCase(c: Case, minSeconds?: number): Promise<Result> {
  const o = { threads: c.threads, minSeconds };
  if (c.bench === 'gemm') return benchGemm(c.m, c.n, c.k, o);
  if (c.bench === 'attention') return benchAttention(c.batchHeads, c.seq, c.headDim, c.causal, o);
  return benchElementwise(c.op, c.size, o);
}

function label(c: Case): string {
  if (c.bench === 'gemm') return `gemm ${c.m}x${c.n}x${c.k}`;
  if (c.bench === 'attention') return `attention ${c.batchHeads}x${c.seq}x${c.headDim}${c.causal ? ' causal' : ''}`;
  return `${c.op} ${c.size / (1 << 20)}M f32`;
}

function metric(r: { gflops?: number; gbps?: number }): string {
  return r.gflops !== undefined ? `${r.gflops.toFixed(1)} GFLOP/s` : `${r.gbps!.toFixed(1)} GB/s`;
}
function value(r: { gflops?: number; gbps?: number }): number {
  return r.gflops ?? r.gbps!;
}

function mib(b: number): string {
  return `${(b / 2 ** 20).toFixed(2)} MiB`;
}

export async function runSuite(o: SuiteOptions): Promise<void> {
  const { main, sweep } = suiteCases(o);
  const ours: Result[] = [];
  for (const c of main) {
    const r = await runCase(c, o.minSeconds);
    ours.push(r);
    if (!o.json) console.log(`lineage  ${label(c).padEnd(30)} threads=${c.threads}  ${metric(r).padStart(14)}  (${r.medianMs.toFixed(2)} ms)`);
  }
  const sweepResults: AttentionResult[] = [];
  for (const c of sweep) {
    const r = (await runCase(c, o.minSeconds)) as AttentionResult;
    sweepResults.push(r);
    if (!o.json) {
      console.log(`lineage  ${label(c).padEnd(30)} threads=${c.threads}  ${metric(r).padStart(14)}  extra memory ${mib(r.peakBytes)} (scores would be ${mib(r.scoresBytes)})`);
    }
  }
  let torch: { info: { torch: string }; results: { gflops?: number; gbps?: number; medianMs: number }[] } | null = null;
  if (o.torch) {
    if (torchAvailable()) {
      if (!o.json) console.log('running PyTorch (bench/torch_ref.py) for the same shapes ...');
      torch = runTorch(main);
    } else if (!o.json) {
      console.log('PyTorch not available (/usr/bin/python3 -c "import torch" failed): no ratios');
    }
  }
  const rows = main.map((c, i) => {
    const t = torch?.results[i];
    return { case: label(c), threads: c.threads, lineage: ours[i]!, torch: t ?? null, ratio: t ? value(ours[i]!) / value(t) : null };
  });
  if (o.json) {
    console.log(JSON.stringify({ torch: torch?.info ?? null, results: rows, sweep: sweepResults }));
    return;
  }
  if (torch) {
    console.log(`\nLineage vs PyTorch ${torch.info.torch} (ratio > 1: Lineage faster)`);
    for (const r of rows) {
      console.log(`  ${r.case.padEnd(30)} threads=${r.threads}  lineage ${metric(r.lineage).padStart(14)}  torch ${metric(r.torch!).padStart(14)}  ratio ${r.ratio!.toFixed(2)}`);
    }
  }
}
