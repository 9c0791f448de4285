// Prometheus text exposition (version 0.0.4) of the server's counters, gauges and histograms.
import type { ServedModel } from './models.js';

/** resident set size of this process (Node's process API: the serve layer is Node-only) */
const residentBytes = (): number => process.memoryUsage.rss();

const LATENCY_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30];

class Histogram {
  readonly counts = new Array<number>(LATENCY_BUCKETS.length).fill(0);
  sum = 0;
  n = 0;
  observe(v: number): void {
    this.sum += v;
    this.n++;
    const i = LATENCY_BUCKETS.findIndex((b) => v <= b);
    if (i >= 0) this.counts[i]!++;
  }
  lines(name: string, labels: string): string[] {
    let acc = 0;
    const out = LATENCY_BUCKETS.map((b, i) => `${name}_bucket{${labels},le="${b}"} ${(acc += this.counts[i]!)}`);
    out.push(
      `${name}_bucket{${labels},le="+Inf"} ${this.n}`,
      `${name}_sum{${labels}} ${this.sum}`,
      `${name}_count{${labels}} ${this.n}`,
    );
    return out;
  }
}

interface PerModel {
  promptTokens: number;
  generatedTokens: number;
  requests: Record<string, number>;
  ttft: Histogram;
  itl: Histogram;
}

export class Metrics {
  private readonly per = new Map<string, PerModel>();

  private of(model: string): PerModel {
    let m = this.per.get(model);
    if (!m)
      this.per.set(
        model,
        (m = { promptTokens: 0, generatedTokens: 0, requests: {}, ttft: new Histogram(), itl: new Histogram() }),
      );
    return m;
  }

  request(model: string, outcome: string): void {
    const r = this.of(model).requests;
    r[outcome] = (r[outcome] ?? 0) + 1;
  }
  tokens(model: string, prompt: number, generated: number): void {
    const m = this.of(model);
    m.promptTokens += prompt;
    m.generatedTokens += generated;
  }
  firstToken(model: string, seconds: number): void {
    this.of(model).ttft.observe(seconds);
  }
  interToken(model: string, seconds: number): void {
    this.of(model).itl.observe(seconds);
  }

  render(models: readonly ServedModel[]): string {
    const lines: string[] = [];
    const metric = (name: string, type: string, help: string, rows: string[]) =>
      lines.push(`# HELP ${name} ${help}`, `# TYPE ${name} ${type}`, ...rows);
    const each = (f: (m: ServedModel, l: string) => string[]) => models.flatMap((m) => f(m, `model="${m.name}"`));
    const stats = new Map(models.map((m) => [m.name, m.engine.stats()]));
    const gauge = (name: string, help: string, v: (s: ReturnType<ServedModel['engine']['stats']>) => number) =>
      metric(
        name,
        'gauge',
        help,
        each((m, l) => [`${name}{${l}} ${v(stats.get(m.name)!)}`]),
      );
    gauge('lineage_requests_running', 'sequences running in the engine', (s) => s.running);
    gauge('lineage_requests_waiting', 'sequences waiting for KV blocks or a batch slot', (s) => s.waiting);
    gauge('lineage_kv_blocks_used', 'KV-cache blocks in use', (s) => s.kvBlocksUsed);
    gauge('lineage_kv_blocks_total', 'KV-cache blocks in the pool', (s) => s.kvBlocksTotal);
    metric(
      'lineage_prefix_cache_hits_total',
      'counter',
      'prompt KV blocks served from the prefix cache',
      each((m, l) => [`lineage_prefix_cache_hits_total{${l}} ${stats.get(m.name)!.prefixCacheHits}`]),
    );
    gauge('lineage_speculative_acceptance_rate', 'accepted / proposed draft tokens', (s) => s.acceptanceRate);
    metric(
      'lineage_prompt_tokens_total',
      'counter',
      'prompt tokens processed',
      each((m, l) => [`lineage_prompt_tokens_total{${l}} ${this.of(m.name).promptTokens}`]),
    );
    metric(
      'lineage_generation_tokens_total',
      'counter',
      'tokens generated',
      each((m, l) => [`lineage_generation_tokens_total{${l}} ${this.of(m.name).generatedTokens}`]),
    );
    metric(
      'lineage_requests_total',
      'counter',
      'finished requests by outcome',
      each((m, l) =>
        Object.entries(this.of(m.name).requests).map(([o, n]) => `lineage_requests_total{${l},outcome="${o}"} ${n}`),
      ),
    );
    metric(
      'lineage_time_to_first_token_seconds',
      'histogram',
      'time from request to first token',
      each((m, l) => this.of(m.name).ttft.lines('lineage_time_to_first_token_seconds', l)),
    );
    metric(
      'lineage_inter_token_latency_seconds',
      'histogram',
      'time between consecutive tokens of a sequence',
      each((m, l) => this.of(m.name).itl.lines('lineage_inter_token_latency_seconds', l)),
    );
    metric('process_resident_memory_bytes', 'gauge', 'resident memory of the server process', [
      `process_resident_memory_bytes ${residentBytes()}`,
    ]);
    return lines.join('\n') + '\n';
  }
}
