// `lineage quantize`: a float model directory -> a weight-only quantized one (GGUF q8_0 / q4_0 blocks) that
// generate, eval and the engine load like any other (docs/QUANTIZATION.md).
import { existsSync } from 'node:fs';
import { resolve } from 'node:path';
import { quantizeModelDir } from '../../infer/quant-node.js';
import { flagString, parseFlags } from '../flags.js';

const HELP = `usage: lineage quantize --model DIR --bits 8|4 [--group-size 32] --out DIR [--include-head] [--exclude PATH]... [--json]

  --bits 8           int8, GGUF q8_0 blocks (32 weights + a float16 scale each)
  --bits 4           int4, GGUF q4_0 blocks (32 nibbles + a float16 scale each)
  --group-size 32    weights per scale; 32 is the only GGUF block size for these formats
  --include-head     also quantize lm_head (kept in float by default)
  --exclude PATH     keep this module (dotted path, e.g. model.layers.0.mlp.down_proj) in float; repeatable

  Embeddings, norms and biases stay in their stored dtype.`;

export async function quantizeCommand(argv: string[]): Promise<void> {
  const f = parseFlags('quantize', argv, ['model', 'bits', 'group-size', 'out', 'exclude'], ['include-head', 'json']);
  if (f.help) return void console.log(HELP);
  const src = flagString(f, 'model');
  const out = flagString(f, 'out');
  const bitsText = flagString(f, 'bits');
  if (!src) throw new Error('--model DIR is required');
  if (!out) throw new Error('--out DIR is required');
  if (!existsSync(src)) throw new Error(`--model ${src}: no such directory`);
  if (resolve(src) === resolve(out))
    throw new Error('--out must differ from --model (the float model is read while writing)');
  if (bitsText === undefined) throw new Error('--bits is required: 8 (q8_0) or 4 (q4_0)');
  if (bitsText !== '8' && bitsText !== '4')
    throw new Error(`--bits must be 8 (q8_0) or 4 (q4_0), got ${JSON.stringify(bitsText)}`);
  const gsText = flagString(f, 'group-size') ?? '32';
  if (gsText !== '32')
    throw new Error(`--group-size must be 32 (the GGUF q8_0 / q4_0 block size), got ${JSON.stringify(gsText)}`);
  const bits = bitsText === '8' ? 8 : 4;
  const r = await quantizeModelDir(src, out, {
    bits,
    groupSize: 32,
    includeHead: f.bools.has('include-head'),
    exclude: f.values.get('exclude') ?? [],
  }).catch((e: Error) => {
    throw new Error(e.message.replace(/^quantizeModel: exclude /, '--exclude '));
  });
  const summary = {
    out: r.out,
    bits: r.bits,
    format: bits === 8 ? 'q8_0' : 'q4_0',
    quantized: r.quantized.length,
    skipped: r.skipped,
    sourceBytes: r.sourceBytes,
    outBytes: r.outBytes,
  };
  if (f.bools.has('json')) return void console.log(JSON.stringify(summary));
  console.log(
    `${summary.format}: ${r.quantized.length} layers quantized, ${r.skipped.length} kept in float -> ${r.out}`,
  );
  for (const s of r.skipped) console.log(`  float: ${s.path} (${s.reason})`);
  console.log(`model.safetensors: ${r.sourceBytes} -> ${r.outBytes} bytes`);
}
