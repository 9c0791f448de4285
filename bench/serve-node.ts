// `lineage bench serve`: load on an OpenAI-compatible server (its own `lineage serve`, or --url) from C
// concurrent clients for D seconds, each streaming completions; reports requests/s, generated tokens/s,
// time to first token and inter-token latency (p50 / p99), errors, and the server's resident memory at
// the start and the end (from its /metrics), which shows whether memory stays flat under load.
import { spawn, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { bundledModelDir } from '../src/cli/commands/generate.js';

export interface ServeBenchResult {
  url: string;
  concurrency: number;
  durationSeconds: number;
  requests: number;
  errors: number;
  requestsPerSecond: number;
  tokensPerSecond: number;
  ttftMsP50: number;
  ttftMsP99: number;
  itlMsP50: number;
  itlMsP99: number;
  rssStartBytes: number | null;
  rssEndBytes: number | null;
}

const quantile = (xs: number[], q: number) => {
  if (xs.length === 0) return 0;
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor(q * s.length))]!;
};

async function rss(url: string): Promise<number | null> {
  const text = await (await fetch(`${url}/metrics`)).text();
  const m = /^process_resident_memory_bytes (\d+)/m.exec(text);
  return m ? Number(m[1]) : null;
}

/** one streamed completion; pushes its first-token and inter-token times (ms); returns tokens received */
async function oneRequest(
  url: string,
  model: string,
  prompt: string,
  maxTokens: number,
  ttft: number[],
  itl: number[],
): Promise<number> {
  const t0 = performance.now();
  const res = await fetch(`${url}/v1/completions`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ model, prompt, max_tokens: maxTokens, temperature: 1, stream: true }),
  });
  if (!res.ok || !res.body) throw new Error(`HTTP ${res.status}: ${await res.text()}`);
  let last = 0;
  let tokens = 0;
  let buf = '';
  const dec = new TextDecoder();
  for await (const part of res.body as unknown as AsyncIterable<Uint8Array>) {
    buf += dec.decode(part, { stream: true });
    let i: number;
    while ((i = buf.indexOf('\n\n')) >= 0) {
      const ev = buf.slice(0, i);
      buf = buf.slice(i + 2);
      if (!ev.startsWith('data: ') || ev === 'data: [DONE]') continue;
      const obj = JSON.parse(ev.slice(6)) as { error?: { message: string } };
      if (obj.error) throw new Error(obj.error.message);
      const now = performance.now();
      if (tokens === 0) ttft.push(now - t0);
      else itl.push(now - last);
      last = now;
      tokens++;
    }
  }
  return tokens;
}

async function startServer(model: string, threads: number): Promise<{ url: string; proc: ChildProcess }> {
  const bin = fileURLToPath(new URL('../../bin/lineage.js', import.meta.url));
  const proc = spawn(
    process.execPath,
    [
      '--experimental-wasm-relaxed-simd',
      bin,
      'serve',
      '--model',
      `bench=${model}`,
      '--port',
      '0',
      '--max-queue',
      '100000',
    ],
    {
      env: { ...process.env, LINEAGE_THREADS: String(threads) },
      stdio: ['ignore', 'pipe', 'pipe'],
    },
  );
  let out = '';
  proc.stdout!.on('data', (d) => (out += d));
  proc.stderr!.on('data', (d) => (out += d));
  const url = await new Promise<string>((resolve, reject) => {
    const t = setInterval(() => {
      const m = /on (http:\/\/\S+) /.exec(out);
      if (m) (clearInterval(t), resolve(m[1]!));
    }, 50);
    proc.once('exit', (c) => (clearInterval(t), reject(new Error(`lineage serve exited ${c}: ${out}`))));
  });
  return { url, proc };
}

export async function serveBenchCommand(
  flags: Map<string, string>,
  threads: number,
  json: boolean,
  int: (name: string, def?: number) => number,
): Promise<void> {
  const concurrency = int('concurrency', 64);
  const duration = int('duration', 60);
  const maxTokens = int('max-tokens', 64);
  const prompt = flags.get('prompt') ?? 'ROMEO:\nWhat light through yonder window breaks?\n';
  const own = flags.has('url') ? null : await startServer(flags.get('model') ?? bundledModelDir(), threads);
  const url = (flags.get('url') ?? own!.url).replace(/\/$/, '');
  try {
    const model =
      flags.get('served-model') ??
      (own ? 'bench' : ((await (await fetch(`${url}/v1/models`)).json()) as { data: { id: string }[] }).data[0]!.id);
    const rssStart = await rss(url);
    const ttft: number[] = [];
    const itl: number[] = [];
    let requests = 0;
    let errors = 0;
    let tokens = 0;
    const t0 = performance.now();
    const end = t0 + duration * 1000;
    const firstError: string[] = [];
    await Promise.all(
      Array.from({ length: concurrency }, async () => {
        while (performance.now() < end) {
          try {
            const n = await oneRequest(url, model, prompt, maxTokens, ttft, itl); // not `tokens += await`: that reads tokens before the await
            tokens += n;
            requests++;
          } catch (e) {
            errors++;
            if (firstError.length === 0) firstError.push((e as Error).message);
          }
        }
      }),
    );
    const secs = (performance.now() - t0) / 1000;
    const r: ServeBenchResult = {
      url,
      concurrency,
      durationSeconds: secs,
      requests,
      errors,
      requestsPerSecond: requests / secs,
      tokensPerSecond: tokens / secs,
      ttftMsP50: quantile(ttft, 0.5),
      ttftMsP99: quantile(ttft, 0.99),
      itlMsP50: quantile(itl, 0.5),
      itlMsP99: quantile(itl, 0.99),
      rssStartBytes: rssStart,
      rssEndBytes: await rss(url),
    };
    if (json)
      console.log(JSON.stringify({ ...r, threads, ...(firstError.length ? { firstError: firstError[0] } : {}) }));
    else {
      const mb = (b: number | null) => (b === null ? '?' : `${(b / 2 ** 20).toFixed(0)} MiB`);
      console.log(
        `serve C=${concurrency} ${secs.toFixed(0)} s: ${r.requestsPerSecond.toFixed(2)} req/s, ${r.tokensPerSecond.toFixed(1)} tok/s, TTFT p50/p99 ${r.ttftMsP50.toFixed(0)}/${r.ttftMsP99.toFixed(0)} ms, ITL p50/p99 ${r.itlMsP50.toFixed(1)}/${r.itlMsP99.toFixed(1)} ms, errors ${errors}, RSS ${mb(r.rssStartBytes)} -> ${mb(r.rssEndBytes)}`,
      );
      if (firstError.length) console.log(`first error: ${firstError[0]}`);
    }
  } finally {
    if (own) {
      own.proc.kill('SIGTERM');
      await new Promise((r) => own.proc.once('exit', r));
    }
  }
}
