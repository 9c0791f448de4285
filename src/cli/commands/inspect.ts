// `lineage inspect <preset | model dir | config.json> [--context N] [--dtype D] [--set field=value]... [--json]`
// Parameter counts, FLOPs and cache sizes from the config alone; nothing is allocated, so even
// mixtral-8x7b answers instantly.

import { readFile, stat } from 'node:fs/promises';

import { type HfJson, applyOverrides, fromHFConfig } from '../../models/hf-config.js';
import { CACHE_DTYPES, type CacheDType, formatInspect, inspectConfig } from '../../models/inspect.js';
import { getPresetInfo, isPreset, presetNames } from '../../models/presets.js';
import { CONFIG_FILE, readConfigJson } from '../../io/checkpoint-node.js';

const USAGE = 'usage: lineage inspect <preset | model dir | config.json> [--context N] [--dtype float32|float16|bfloat16|int8] [--set field=value]... [--json]';

interface InspectArgs {
  target: string;
  context?: number;
  dtype?: CacheDType;
  sets: string[];
  json: boolean;
}

function parseArgs(argv: readonly string[]): InspectArgs {
  const args: InspectArgs = { target: '', sets: [], json: false };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const value = (): string => {
      const v = argv[++i];
      if (v === undefined) throw new Error(`inspect: ${a} needs a value\n${USAGE}`);
      return v;
    };
    if (a === '--json') args.json = true;
    else if (a === '--context') args.context = parseContext(value());
    else if (a === '--dtype') args.dtype = parseDtype(value());
    else if (a === '--set') args.sets.push(value());
    else if (a.startsWith('--')) throw new Error(`inspect: unknown option ${a}\n${USAGE}`);
    else if (args.target) throw new Error(`inspect: unexpected argument ${JSON.stringify(a)} (target already ${JSON.stringify(args.target)})\n${USAGE}`);
    else args.target = a;
  }
  if (!args.target) throw new Error(`inspect: missing preset name or model directory\n${USAGE}`);
  return args;
}

function parseContext(text: string): number {
  const n = Number(text);
  if (!Number.isInteger(n) || n <= 0) throw new Error(`inspect: --context must be a positive integer, got ${JSON.stringify(text)}`);
  return n;
}

function parseDtype(text: string): CacheDType {
  if (!(CACHE_DTYPES as readonly string[]).includes(text)) {
    throw new Error(`inspect: --dtype must be one of ${CACHE_DTYPES.join(', ')}, got ${JSON.stringify(text)}`);
  }
  return text as CacheDType;
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
  if (argv.includes('--help') || argv.includes('-h')) {
    process.stdout.write(`${USAGE}\n\npresets: ${presetNames().join(', ')}\n`);
    return;
  }
  const args = parseArgs(argv);
  const hf = applyOverrides(await loadHfConfig(args.target), args.sets);
  const report = inspectConfig(fromHFConfig(hf), { context: args.context, dtype: args.dtype });
  const text = args.json ? JSON.stringify({ model: args.target, ...report }, null, 2) : formatInspect(report, args.target);
  process.stdout.write(text + '\n');
}
