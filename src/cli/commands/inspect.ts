// `lineage inspect <preset | model dir | config.json> [--context N] [--dtype D] [--set field=value]... [--json]`
// Parameter counts, FLOPs and cache sizes from the config alone; nothing is allocated, so even
// mixtral-8x7b answers instantly.

import { readFile, stat } from 'node:fs/promises';

import { type HfJson, applyOverrides, fromHFConfig } from '../../models/hf-config.js';
import { CACHE_DTYPES, type CacheDType, formatInspect, humanBytes, inspectConfig } from '../../models/inspect.js';
import { getPresetInfo, isPreset, presetNames } from '../../models/presets.js';
import { CONFIG_FILE, listCheckpointTensors, readConfigJson } from '../../io/checkpoint-node.js';
import { readQuantizationConfig, type QuantizationConfig } from '../../models/quantized.js';
import { flagChoice, flagNumber, parseFlags } from '../flags.js';

const USAGE =
  'usage: lineage inspect <preset | model dir | config.json> [--context N] [--dtype float32|float16|bfloat16|int8] [--set field=value]... [--json]';

interface InspectArgs {
  target: string;
  context?: number;
  dtype?: CacheDType;
  sets: string[];
  json: boolean;
}

function parseArgs(argv: readonly string[]): InspectArgs | null {
  const f = parseFlags('inspect', argv, ['context', 'dtype', 'set'], ['json'], {
    positionals: 1,
    positionalName: 'preset or model directory',
  });
  if (f.help) return null;
  const target = f.positionals[0];
  if (!target) throw new Error(`missing preset name or model directory\n${USAGE}`);
  return {
    target,
    context: flagNumber(f, 'context', { int: true, min: 1 }),
    dtype: flagChoice(f, 'dtype', CACHE_DTYPES),
    sets: f.values.get('set') ?? [],
    json: f.bools.has('json'),
  };
}

/** What a model directory's weights hold, from the safetensors headers (no tensor data is read). */
interface StoredSummary {
  files: number;
  tensors: number;
  /** stored values; equals the config's parameter count unless the file has buffers or extra heads */
  values: number;
  bytes: number;
  dtypes: Record<string, number>;
  /** a quantized checkpoint: its format, and the bytes of its packed weight blocks */
  quantized?: { format: string; bits: number; layers: number; blockBytes: number };
}

/** bytes per 32-weight GGUF block: 32 int8 + an f16 scale (q8_0), 16 bytes of nibbles + the scale (q4_0) */
const BLOCK_BYTES: Record<string, number> = { q8_0: 34, q4_0: 18 };

async function storedSummary(dir: string, qc: QuantizationConfig | null): Promise<StoredSummary | null> {
  const list = await listCheckpointTensors(dir);
  if (list.length === 0) return null;
  const packed = new Set((qc?.modules ?? []).map((m) => `${m}.weight`));
  const dtypes: Record<string, number> = {};
  let values = 0;
  let bytes = 0;
  let blockBytes = 0;
  for (const t of list) {
    let n = t.shape.reduce((a, b) => a * b, 1);
    // a packed U8 [out, rowBytes] weight holds out x (rowBytes / blockBytes x 32) parameters, not its bytes
    if (qc && packed.has(t.name) && t.shape.length === 2) {
      n = t.shape[0]! * (t.shape[1]! / BLOCK_BYTES[qc.format]!) * 32;
      blockBytes += t.end - t.begin;
    }
    values += n;
    bytes += t.end - t.begin;
    const key = qc && packed.has(t.name) ? qc.format : t.dtype;
    dtypes[key] = (dtypes[key] ?? 0) + n;
  }
  const quantized = qc ? { format: qc.format, bits: qc.bits, layers: qc.modules.length, blockBytes } : undefined;
  return { files: new Set(list.map((t) => t.file)).size, tensors: list.length, values, bytes, dtypes, quantized };
}

function storedRow(s: StoredSummary, params: number): [string, string][] {
  const dtypes = Object.keys(s.dtypes).join('/');
  const diff = s.values - params;
  const count = `${Math.abs(diff).toLocaleString('en-US')}`;
  const match =
    diff === 0
      ? 'matches the config'
      : diff < 0
        ? `${count} fewer than the config's parameters: the weights do not match the config's shapes (a model saved for another config?)`
        : `${count} more than the config's parameters: extra tensors (buffers, task heads) or weights for a larger config`;
  const rows: [string, string][] = [
    [
      'checkpoint',
      `${s.tensors} tensors in ${s.files} file(s), ${s.values.toLocaleString('en-US')} parameters (${dtypes}, ${humanBytes(s.bytes)}), ${match}`,
    ],
  ];
  if (s.quantized)
    rows.push([
      'quantized',
      `${s.quantized.format} (int${s.quantized.bits}): ${s.quantized.layers} layers, ${humanBytes(s.quantized.blockBytes)} of weight blocks`,
    ]);
  return rows;
}

/** config.json of a preset, a model directory, or a config.json path. */
async function loadHfConfig(target: string): Promise<HfJson> {
  if (isPreset(target)) return getPresetInfo(target).hf;
  const info = await stat(target).catch(() => null);
  if (info?.isDirectory()) return readConfigJson(target);
  if (info?.isFile() && target.endsWith('.json')) {
    try {
      return JSON.parse(await readFile(target, 'utf8')) as HfJson;
    } catch (e) {
      throw new Error(`inspect: ${target} is not valid JSON: ${(e as Error).message}`);
    }
  }
  throw new Error(
    `inspect: ${JSON.stringify(target)} is neither a preset nor a model directory with ${CONFIG_FILE} ` +
      `(presets: ${presetNames().join(', ')})`,
  );
}

export async function inspectCommand(argv: string[]): Promise<void> {
  const args = parseArgs(argv);
  if (!args) {
    process.stdout.write(`${USAGE}\n\npresets: ${presetNames().join(', ')}\n`);
    return;
  }
  const hf = applyOverrides(await loadHfConfig(args.target), args.sets);
  const report = inspectConfig(fromHFConfig(hf), { context: args.context, dtype: args.dtype });
  const isDir = !isPreset(args.target) && (await stat(args.target)).isDirectory();
  const qc = readQuantizationConfig(hf, `${args.target}/config.json`);
  const stored = isDir ? await storedSummary(args.target, qc) : null;
  // a preset says where its numbers come from (the config.json it transcribes, or the paper)
  const source: [string, string][] = isPreset(args.target) ? [['config from', getPresetInfo(args.target).source]] : [];
  if (args.json) {
    const from = source.length > 0 ? { source: source[0]![1] } : {};
    process.stdout.write(
      JSON.stringify({ model: args.target, ...from, ...report, ...(stored ? { checkpoint: stored } : {}) }, null, 2) +
        '\n',
    );
    return;
  }
  process.stdout.write(
    formatInspect(report, args.target, [...source, ...(stored ? storedRow(stored, report.params) : [])]) + '\n',
  );
}
