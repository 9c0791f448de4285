// `lineage inspect <preset | model dir | config.json> [--context N] [--dtype D] [--set field=value]... [--json]`
// Parameter counts, FLOPs and cache sizes from the config alone; nothing is allocated, so even
// mixtral-8x7b answers instantly.

import { readFile, stat } from 'node:fs/promises';

import { type HfJson, applyOverrides, fromHFConfig } from '../../models/hf-config.js';
import { CACHE_DTYPES, type CacheDType, formatInspect, humanBytes, inspectConfig } from '../../models/inspect.js';
import { getPresetInfo, isPreset, presetNames } from '../../models/presets.js';
import { CONFIG_FILE, listCheckpointTensors, readConfigJson } from '../../io/checkpoint-node.js';
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
}

async function storedSummary(dir: string): Promise<StoredSummary | null> {
  const list = await listCheckpointTensors(dir);
  if (list.length === 0) return null;
  const dtypes: Record<string, number> = {};
  let values = 0;
  let bytes = 0;
  for (const t of list) {
    const n = t.shape.reduce((a, b) => a * b, 1);
    values += n;
    bytes += t.end - t.begin;
    dtypes[t.dtype] = (dtypes[t.dtype] ?? 0) + n;
  }
  return { files: new Set(list.map((t) => t.file)).size, tensors: list.length, values, bytes, dtypes };
}

function storedRow(s: StoredSummary, params: number): [string, string] {
  const dtypes = Object.keys(s.dtypes).join('/');
  const diff = s.values - params;
  const match =
    diff === 0
      ? 'matches the config'
      : `${diff > 0 ? '+' : ''}${diff.toLocaleString('en-US')} vs the config (buffers or task heads)`;
  return [
    'checkpoint',
    `${s.tensors} tensors in ${s.files} file(s), ${s.values.toLocaleString('en-US')} values (${dtypes}, ${humanBytes(s.bytes)}), ${match}`,
  ];
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
  const stored = isDir ? await storedSummary(args.target) : null;
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
    formatInspect(report, args.target, [...source, ...(stored ? [storedRow(stored, report.params)] : [])]) + '\n',
  );
}
