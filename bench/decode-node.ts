// CLI glue of `lineage bench decode`: loads the model directories on the requested thread count, runs
// bench/decode.ts and prints one JSON object (or a line of text).
import { loadModelDir } from '../src/infer/model-dir-node.js';
import { shutdownBackend, useFastBackend } from '../src/cli/backend-node.js';
import { bundledModelDir } from '../src/cli/commands/generate.js';
import { benchDecode } from './decode.js';
import { parseSpeculative } from '../src/cli/commands/speculative-flag.js';
import { checkKvDtype } from '../src/infer/engine/kv-dtype.js';
import { draftContextNotice } from '../src/infer/engine/drafter.js';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

/** the first 200,000 characters of data/tinyshakespeare.txt (beside dist/) */
function corpusText(): string {
  return readFileSync(fileURLToPath(new URL('../../data/tinyshakespeare.txt', import.meta.url)), 'utf8').slice(
    0,
    200_000,
  );
}

export async function decodeCommand(
  flags: Map<string, string>,
  threads: number,
  json: boolean,
  int: (name: string, def?: number) => number,
): Promise<void> {
  const rounds = flags.has('rounds') ? int('rounds') : undefined; // a bad value fails before any model loads
  const prompts = flags.get('prompts') ?? 'text';
  if (prompts !== 'text' && prompts !== 'random')
    throw new Error(`--prompts: expected text or random, got '${prompts}'`);
  const mtpDraft = parseSpeculative(flags.get('speculative'));
  if (flags.has('speculative-tokens') && !flags.has('draft-model') && !mtpDraft)
    throw new Error('--speculative-tokens needs a drafter: --draft-model DIR or --speculative mtp');
  await shutdownBackend();
  await useFastBackend({ threads });
  const { model, tokenizer } = await loadModelDir(flags.get('model') ?? bundledModelDir());
  // prompts are slices of the shipped corpus when the model has a tokenizer (--prompts random: random ids)
  const text = prompts === 'text' && tokenizer ? corpusText() : null;
  const corpus = text ? tokenizer!.encode(text, { addSpecialTokens: false }) : null;
  const draftDir = flags.get('draft-model');
  const draftModel = draftDir ? (await loadModelDir(draftDir)).model : null;
  // a draft shorter than the runs' sequences speculates only over its own positions: say so before timing
  const length = int('prompt-tokens') + int('max-tokens');
  const short = draftModel ? draftContextNotice(model.config, draftModel.config, length) : null;
  if (short) console.error(`lineage bench decode: note: --draft-model ${draftDir}: ${short}`);
  const r = await benchDecode(model, {
    concurrency: int('concurrency'),
    promptTokens: int('prompt-tokens'),
    maxTokens: int('max-tokens'),
    draftModel,
    mtpDraft,
    ...(flags.has('speculative-tokens') ? { speculativeTokens: int('speculative-tokens') } : {}),
    corpus,
    kvDtype: checkKvDtype(flags.get('kv-dtype') ?? 'float32', 'bench decode: --kv-dtype'),
    ...(flags.has('single-requests') ? { singleRequests: int('single-requests') } : {}),
    ...(rounds !== undefined ? { rounds } : {}),
    cpuMs: () => {
      const c = process.cpuUsage();
      return (c.user + c.system) / 1000;
    },
  });
  if (json) return void console.log(JSON.stringify({ ...r, threads, prompts: corpus ? 'text' : 'random' }));
  console.log(
    `decode N=${r.concurrency} P=${r.promptTokens} T=${r.maxTokens} threads=${threads}: ${r.tokensPerSecond.toFixed(1)} tok/s ` +
      `(single stream ${r.singleStreamTokensPerSecond.toFixed(1)}, x${r.speedup.toFixed(2)}), TTFT p50 ${r.ttftMsP50.toFixed(1)} ms, ` +
      `ITL p50 ${r.itlMsP50 === null ? '-' : r.itlMsP50.toFixed(2)} ms/token, KV (${r.kvDtype}, ${r.kvBytesPerToken} B/token) blocks peak ${r.kvBlocksPeak}/${r.kvBlocksTotal}, waste ${r.kvWastePercent.toFixed(1)}%` +
      (r.speculative
        ? `; speculative: acceptance ${r.acceptanceRate.toFixed(3)} (single stream ${r.singleStreamAcceptanceRate!.toFixed(3)}), single stream x${r.speculativeSpeedup!.toFixed(2)} vs plain (${r.plainSingleStreamTokensPerSecond!.toFixed(1)} tok/s; ` +
          `median of ${r.rounds} rounds [${r.speculativeSpeedupRounds!.map((x) => x.toFixed(2)).join(', ')}], CPU time x${r.speculativeSpeedupCpu?.toFixed(2) ?? '-'}), ` +
          `output ${r.identicalOutput ? 'identical' : 'DIFFERENT'}`
        : ''),
  );
}
