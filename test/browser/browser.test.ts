// Lineage in a real browser: Debian's Chromium (headless, through playwright-core, no browser download)
// loads an esbuild bundle of the compiled library from a local server that sends the cross-origin-
// isolation headers. In the page: the wasm backend on the window thread (2 threads, spinning wait),
// then an engine worker that loads the bundled Shakespeare model, generates text, and trains a tiny
// model on the WebAssembly backend with 2 threads. A second page without the headers is the control.
//
// Without /usr/bin/chromium the test skips locally and fails under CI=true (.ci/run installs it).
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import type { Server } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Browser, Page } from 'playwright-core';
import { createWasmBackend, getBackend, setBackend } from '../../src/index.js';
import type { WasmVariant } from '../../src/backend/wasm/module.js';
import { generate } from '../../src/infer/generate.js';
import { loadModelDir } from '../../src/infer/model-dir-node.js';
import { bundlePage, CHROMIUM, CHROMIUM_ARGS, ROOT, startServer } from './harness.js';
import { lastLogits, SAMPLING, type EngineRequest } from './page-shared.js';
import type { PageResult } from './page-main.js';

const CI = process.env.CI === 'true' || process.env.CI === '1';
const HAVE_CHROMIUM = existsSync(CHROMIUM);
const MISSING = `Chromium not found at ${CHROMIUM} (apt-get install chromium, or set LINEAGE_CHROMIUM)`;

if (!HAVE_CHROMIUM && CI) {
  test('browser: Chromium is installed (required under CI=true; .ci/run installs it)', () => assert.fail(MISSING));
}

const REQUEST: EngineRequest = {
  modelBase: '/models/shakespeare-char/',
  prompt: 'ROMEO:\n',
  maxTokens: 60,
  trainSteps: 12,
};
const PAGE_TIMEOUT_MS = 90_000;

/** the same model, prompt and sampling in Node, on the wasm build the browser used (2 threads) */
async function nodeRun(variant: WasmVariant): Promise<{ logits: number[]; ids: number[] }> {
  const prev = getBackend();
  const be = await createWasmBackend({ threads: 2, variant });
  setBackend(be);
  try {
    const { model, tokenizer } = await loadModelDir(join(ROOT, 'models/shakespeare-char'));
    const prompt = tokenizer!.encode(REQUEST.prompt);
    const ids = generate(model, prompt, { maxTokens: REQUEST.maxTokens, ...SAMPLING });
    return { logits: lastLogits(model, prompt), ids };
  } finally {
    setBackend(prev);
    await be.dispose();
  }
}

const roundNumbers = (_: string, v: unknown) => (typeof v === 'number' ? Math.round(v) : v);

interface Session {
  page: Page;
  /** console errors, uncaught page errors and failed requests, in order */
  errors: string[];
}

const SKIP = HAVE_CHROMIUM ? false : `${MISSING}; under CI=true this fails`;

describe('browser (Chromium, playwright-core)', { skip: SKIP }, () => {
  let browser: Browser | null = null;
  let server: Server | null = null;
  let url = '';
  let dir = '';

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'lineage-browser-'));
    await bundlePage(join(dir, 'bundle'));
    ({ server, url } = await startServer(join(dir, 'bundle'), REQUEST));
    const { chromium } = await import('playwright-core');
    browser = await chromium.launch({ executablePath: CHROMIUM, headless: true, args: CHROMIUM_ARGS });
  });

  after(async () => {
    await browser?.close();
    await new Promise<void>((r) => (server ? server.close(() => r()) : r()));
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  async function open(path: string): Promise<Session> {
    const page = await browser!.newPage();
    const errors: string[] = [];
    const onConsole = (m: { type(): string; text(): string; location(): { url: string } }) => {
      if (m.type() === 'error') errors.push(`console.error: ${m.text()} (${m.location().url})`);
    };
    page.on('console', onConsole);
    page.on('worker', (w) => w.on('console', onConsole));
    page.on('pageerror', (e) => errors.push(`pageerror: ${e.message}`));
    page.on('requestfailed', (r) => errors.push(`request failed: ${r.url()} (${r.failure()?.errorText})`));
    page.on('response', (r) => {
      if (r.status() >= 400) errors.push(`HTTP ${r.status()}: ${r.url()}`);
    });
    await page.goto(url + path);
    return { page, errors };
  }

  async function result(s: Session): Promise<PageResult> {
    const done = () => (window as { lineageResult?: unknown }).lineageResult !== undefined;
    await s.page.waitForFunction(done, null, { timeout: PAGE_TIMEOUT_MS });
    return s.page.evaluate(() => (window as unknown as { lineageResult: PageResult }).lineageResult);
  }

  test('isolated page: the Shakespeare model generates, a tiny model trains on wasm with 2 threads', async (t0) => {
    const s = await open('/');
    const r = await result(s);
    assert.equal(r.error, undefined, `page failed: ${r.error}`);
    assert.deepEqual(s.errors, [], 'no console errors, page errors or failed requests');
    assert.equal(r.crossOriginIsolated, true, 'the page is cross-origin isolated (COOP/COEP)');

    // window thread: the pool spins instead of Atomics.wait, and still gets the product right
    const m = r.mainThread!;
    assert.equal(m.threads, 2);
    assert.match(m.backend, /^wasm-/);
    assert.ok(m.parallelJobs > 0, 'the main-thread matmul was split over both threads');
    assert.ok(m.maxAbsErr < 1e-4, `main-thread matmul error ${m.maxAbsErr}`);

    // engine worker: really the wasm backend with 2 threads, and the worker took part
    const e = r.engine!;
    assert.equal(e.crossOriginIsolated, true);
    assert.match(e.backend, /^wasm-/, 'the wasm backend ran, not the reference fallback');
    assert.equal(e.threads, 2);
    assert.ok(e.train.parallelJobs > 0, 'training dispatched kernels to both threads');

    // generation: the requested number of ids, all in the model's vocabulary, decoding to its characters
    const g = e.generated;
    const tokJson = readFileSync(join(ROOT, 'models/shakespeare-char/tokenizer.json'), 'utf8');
    const tok = JSON.parse(tokJson) as { model: { vocab: Record<string, number> } };
    const vocab = tok.model.vocab;
    const V = Object.keys(vocab).length;
    assert.equal(g.vocabSize, V);
    assert.equal(g.ids.length, REQUEST.maxTokens);
    assert.ok(
      g.ids.every((id) => Number.isInteger(id) && id >= 0 && id < V),
      `ids outside [0, ${V}): ${g.ids}`,
    );
    assert.ok(g.text.length > 0, 'generated text is non-empty');
    for (const ch of g.text) assert.ok(ch in vocab, `character ${JSON.stringify(ch)} is not in the vocabulary`);
    const byId = new Map(Object.entries(vocab).map(([k, v]) => [v, k]));
    assert.equal(g.text, g.ids.map((id) => byId.get(id)).join(''), 'text is the decoding of the ids');

    // the same weights as in Node: the prompt's logits agree, and the same kernels sample the same text
    const node = await nodeRun(e.backend.slice('wasm-'.length) as WasmVariant);
    assert.equal(e.promptLogits.length, V);
    const maxErr = Math.max(...e.promptLogits.map((v, i) => Math.abs(v - node.logits[i]!)));
    assert.ok(maxErr < 1e-4, `prompt logits differ from Node's by up to ${maxErr}`);
    assert.deepEqual(g.ids, node.ids, 'the browser generated what Node generates with the same seed and kernels');

    // training: the fixed-batch loss falls
    const t = e.train;
    assert.equal(t.stepLosses.length, REQUEST.trainSteps);
    const losses = [t.lossBefore, t.lossAfter, ...t.stepLosses];
    assert.ok(losses.every(Number.isFinite), `non-finite loss: ${JSON.stringify(t)}`);
    assert.ok(t.lossAfter < t.lossBefore - 0.1, `loss did not fall: ${t.lossBefore} -> ${t.lossAfter}`);
    t0.diagnostic(
      `${e.backend} x${e.threads}, ${g.ids.length} tokens ${JSON.stringify(g.text.slice(0, 40))}…, ` +
        `loss ${t.lossBefore.toFixed(3)} -> ${t.lossAfter.toFixed(3)} in ${t.steps} steps; ` +
        `ms ${JSON.stringify(e.ms, roundNumbers)}`,
    );
    await s.page.close();
  });

  test('a page without COOP/COEP is not isolated, and the wasm backend refuses with a clear message', async () => {
    const s = await open('/plain/');
    const r = await result(s);
    assert.equal(r.crossOriginIsolated, false);
    assert.match(r.isolationError ?? '', /SharedArrayBuffer is unavailable.*COOP\/COEP/);
    assert.deepEqual(s.errors, []);
    await s.page.close();
  });
});
