// Hugging Face model directories on disk (Node only): config.json + model.safetensors, or shards listed
// by model.safetensors.index.json ({ metadata: { total_size }, weight_map: { tensor: file } }).
//
// Reading streams each tensor from its file (no whole-file buffer, so multi-GB shards work); every
// header is validated by src/io/safetensors.ts before any offset is used.
// Writing is atomic per file: everything is written to `NAME.tmp-PID` first and renamed only once all
// files are complete, so an interrupted write never leaves a half-written file under a real name.

import { constants } from 'node:fs';
import { copyFile, mkdir, open, readFile, readdir, rename, rm, stat, type FileHandle } from 'node:fs/promises';
import { basename, join } from 'node:path';

/** a config.json object (io reads and writes it; the models layer gives it meaning) */
export type HfJson = Record<string, unknown>;
import {
  type ParsedSafetensors,
  type RawTensor,
  type SafetensorsEntry,
  type SafetensorsHeader,
  decodeTensor,
  parseSafetensorsHeader,
  readHeaderLength,
  safetensorsLayout,
  tensorBytes,
} from './safetensors.js';

export const CONFIG_FILE = 'config.json';
export const WEIGHTS_FILE = 'model.safetensors';
export const INDEX_FILE = 'model.safetensors.index.json';
export const TOKENIZER_FILE = 'tokenizer.json';

/** Reads of one call are capped below Node's 2 GiB limit. */
const READ_CHUNK = 1 << 30;

export interface Checkpoint {
  /** config.json as parsed (transformers field names) */
  config: HfJson;
  tensors: RawTensor[];
  /** __metadata__ of the (first) weights file */
  metadata: Record<string, string> | null;
  /** tensor name -> path of the file holding it (for messages naming the file) */
  fileOf?: Map<string, string>;
}

async function readExactly(fh: FileHandle, position: number, length: number, file: string): Promise<Uint8Array> {
  const out = new Uint8Array(length);
  let done = 0;
  while (done < length) {
    const { bytesRead } = await fh.read(out, done, Math.min(READ_CHUNK, length - done), position + done);
    if (bytesRead === 0) throw new Error(`safetensors ${file}: unexpected end of file at byte ${position + done}`);
    done += bytesRead;
  }
  return out;
}

/** The validated header of a .safetensors file, without reading any tensor data. */
export async function readSafetensorsHeaderFile(path: string): Promise<SafetensorsHeader> {
  const fh = await open(path, 'r');
  try {
    return await headerOf(fh, path);
  } finally {
    await fh.close();
  }
}

async function headerOf(fh: FileHandle, path: string): Promise<SafetensorsHeader> {
  const size = (await fh.stat()).size;
  const n = readHeaderLength(await readExactly(fh, 0, Math.min(8, size), path), size, path);
  return parseSafetensorsHeader(await readExactly(fh, 8, n, path), size - 8 - n, path);
}

/** A stored tensor's name, dtype and shape, and the file holding it. */
export interface StoredTensorInfo extends SafetensorsEntry {
  file: string;
}

/** Every tensor of a model directory's weights (single file or shards), from the headers alone. */
export async function listCheckpointTensors(dir: string): Promise<StoredTensorInfo[]> {
  const files = (await exists(join(dir, WEIGHTS_FILE)))
    ? [WEIGHTS_FILE]
    : (await exists(join(dir, INDEX_FILE)))
      ? [...parseIndex(await readJson(join(dir, INDEX_FILE)), join(dir, INDEX_FILE)).keys()]
      : [];
  const out: StoredTensorInfo[] = [];
  for (const file of files) {
    for (const e of (await readSafetensorsHeaderFile(join(dir, file))).entries) out.push({ ...e, file });
  }
  return out;
}

/** Reads a .safetensors file tensor by tensor. `only`: names to load (others are validated, not read). */
export async function readSafetensorsFile(path: string, only?: ReadonlySet<string>): Promise<ParsedSafetensors> {
  const fh = await open(path, 'r');
  try {
    const header = await headerOf(fh, path);
    const tensors: RawTensor[] = [];
    for (const e of header.entries) {
      if (only && !only.has(e.name)) continue;
      const bytes = await readExactly(fh, header.dataStart + e.begin, e.end - e.begin, path);
      tensors.push(decodeTensor(e, bytes, path)); // fresh, aligned buffer: the typed array is a view of it
    }
    return { tensors, metadata: header.metadata };
  } finally {
    await fh.close();
  }
}

async function readJson(path: string): Promise<unknown> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (e) {
    throw new Error(`cannot read ${path}: ${(e as Error).message}`);
  }
  try {
    return JSON.parse(text);
  } catch (e) {
    throw new Error(`${path} is not valid JSON: ${(e as Error).message}`);
  }
}

async function exists(path: string): Promise<boolean> {
  try {
    await stat(path);
    return true;
  } catch {
    return false;
  }
}

/** Reads and checks `DIR/config.json` (an object with a string model_type). */
export async function readConfigJson(dir: string): Promise<HfJson> {
  const path = join(dir, CONFIG_FILE);
  const json = await readJson(path);
  if (typeof json !== 'object' || json === null || Array.isArray(json))
    throw new Error(`${path} must hold a JSON object`);
  if (typeof (json as HfJson).model_type !== 'string') throw new Error(`${path}: field "model_type" is missing`);
  return json as HfJson;
}

/** Parses a shard index into file → tensor names, refusing paths that leave the directory. */
function parseIndex(json: unknown, path: string): Map<string, string[]> {
  const map = (json as { weight_map?: unknown } | null)?.weight_map;
  if (typeof map !== 'object' || map === null || Array.isArray(map))
    throw new Error(`${path}: field "weight_map" must be an object`);
  const byFile = new Map<string, string[]>();
  for (const [name, file] of Object.entries(map)) {
    if (
      typeof file !== 'string' ||
      file !== basename(file) ||
      file === '..' ||
      file === '.' ||
      !file.endsWith('.safetensors')
    ) {
      throw new Error(
        `${path}: weight_map["${name}"] must name a .safetensors file in the same directory, got ${JSON.stringify(file)}`,
      );
    }
    byFile.set(file, [...(byFile.get(file) ?? []), name]);
  }
  return byFile;
}

async function readSharded(dir: string): Promise<Omit<Checkpoint, 'config'>> {
  const indexPath = join(dir, INDEX_FILE);
  const byFile = parseIndex(await readJson(indexPath), indexPath);
  const tensors: RawTensor[] = [];
  let metadata: Record<string, string> | null = null;
  for (const [file, names] of byFile) {
    const wanted = new Set(names);
    const part = await readSafetensorsFile(join(dir, file), wanted);
    metadata ??= part.metadata;
    for (const t of part.tensors) wanted.delete(t.name);
    if (wanted.size > 0)
      throw new Error(
        `${indexPath}: ${file} lacks tensors the weight_map assigns to it: ${[...wanted].slice(0, 5).join(', ')}`,
      );
    tensors.push(...part.tensors);
  }
  const fileOf = new Map([...byFile].flatMap(([file, names]) => names.map((n) => [n, join(dir, file)] as const)));
  return { tensors, metadata, fileOf };
}

/** Reads a Hugging Face model directory: config.json and the weights (single file or sharded). */
export async function readCheckpoint(dir: string): Promise<Checkpoint> {
  const config = await readConfigJson(dir);
  const single = join(dir, WEIGHTS_FILE);
  if (await exists(single)) {
    const parsed = await readSafetensorsFile(single);
    return { config, ...parsed, fileOf: new Map(parsed.tensors.map((t) => [t.name, single])) };
  }
  if (await exists(join(dir, INDEX_FILE))) return { config, ...(await readSharded(dir)) };
  const files = (await readdir(dir)).join(', ');
  throw new Error(`${dir}: no ${WEIGHTS_FILE} or ${INDEX_FILE} (found: ${files || 'nothing'})`);
}

// ----------------------------------------------------------------------------------------------------
// Writing

export interface WriteCheckpointOptions {
  /** split weights into shards of at most this many bytes (a larger single tensor gets its own shard) */
  maxShardBytes?: number;
  /** a tokenizer.json to copy into the directory */
  tokenizerPath?: string;
  /** safetensors __metadata__; default { format: 'pt' }, which transformers expects */
  metadata?: Record<string, string>;
}

/** Greedy, order-preserving packing of tensors into shards. */
export function planShards(tensors: readonly RawTensor[], maxShardBytes: number | undefined): RawTensor[][] {
  if (maxShardBytes === undefined) return [tensors.slice()];
  if (!(maxShardBytes > 0)) throw new Error(`writeCheckpoint: maxShardBytes must be > 0, got ${maxShardBytes}`);
  const shards: RawTensor[][] = [[]];
  let used = 0;
  for (const t of tensors) {
    const cur = shards[shards.length - 1];
    if (cur.length > 0 && used + t.data.byteLength > maxShardBytes) {
      shards.push([t]);
      used = t.data.byteLength;
    } else {
      cur.push(t);
      used += t.data.byteLength;
    }
  }
  return shards;
}

const shardName = (i: number, n: number): string =>
  `model-${String(i + 1).padStart(5, '0')}-of-${String(n).padStart(5, '0')}.safetensors`;

async function writeTemp(path: string, write: (fh: FileHandle) => Promise<void>): Promise<string> {
  const tmp = `${path}.tmp-${process.pid}`;
  const fh = await open(tmp, constants.O_WRONLY | constants.O_CREAT | constants.O_TRUNC);
  try {
    await write(fh);
    await fh.sync();
  } finally {
    await fh.close();
  }
  return tmp;
}

async function writeSafetensorsTemp(
  path: string,
  tensors: readonly RawTensor[],
  metadata: Record<string, string>,
): Promise<string> {
  const layout = safetensorsLayout(tensors, metadata);
  return writeTemp(path, async (fh) => {
    await fh.write(layout.header);
    for (const t of layout.order) {
      const bytes = tensorBytes(t);
      for (let off = 0; off < bytes.length; off += READ_CHUNK) await fh.write(bytes.subarray(off, off + READ_CHUNK));
    }
  });
}

const writeTextTemp = (path: string, text: string): Promise<string> =>
  writeTemp(path, async (fh) => void (await fh.write(text)));

/** Writes a Hugging Face model directory (config.json, weights, optional tokenizer.json). `config` is the
 * config.json object (a ModelConfig goes through the models layer's toHFConfig first). Weight files of an earlier write that
 * the new one does not use are removed, so readers never mix old and new shards. */
export async function writeCheckpoint(
  dir: string,
  hf: HfJson,
  tensors: readonly RawTensor[],
  opts: WriteCheckpointOptions = {},
): Promise<void> {
  const metadata = opts.metadata ?? { format: 'pt' };
  const shards = planShards(tensors, opts.maxShardBytes);
  await mkdir(dir, { recursive: true });
  const pending: [tmp: string, final: string][] = [];
  try {
    const names = shards.length === 1 ? [WEIGHTS_FILE] : shards.map((_, i) => shardName(i, shards.length));
    for (let i = 0; i < shards.length; i++) {
      const final = join(dir, names[i]);
      pending.push([await writeSafetensorsTemp(final, shards[i], metadata), final]);
    }
    if (shards.length > 1) {
      const index = shardIndex(shards, names);
      pending.push([
        await writeTextTemp(join(dir, INDEX_FILE), JSON.stringify(index, null, 2) + '\n'),
        join(dir, INDEX_FILE),
      ]);
    }
    if (opts.tokenizerPath) {
      const tmp = `${join(dir, TOKENIZER_FILE)}.tmp-${process.pid}`;
      await copyFile(opts.tokenizerPath, tmp);
      pending.push([tmp, join(dir, TOKENIZER_FILE)]);
    }
    pending.push([
      await writeTextTemp(join(dir, CONFIG_FILE), JSON.stringify(hf, null, 2) + '\n'),
      join(dir, CONFIG_FILE),
    ]);
  } catch (e) {
    await Promise.all(pending.map(([tmp]) => rm(tmp, { force: true })));
    throw e;
  }
  for (const [tmp, final] of pending) await rename(tmp, final);
  await removeStaleWeights(dir, new Set(pending.map(([, final]) => basename(final))));
}

function shardIndex(shards: RawTensor[][], names: string[]): HfJson {
  const weightMap: Record<string, string> = {};
  let total = 0;
  shards.forEach((shard, i) => {
    for (const t of shard) {
      weightMap[t.name] = names[i];
      total += t.data.byteLength;
    }
  });
  const sorted = Object.fromEntries(Object.entries(weightMap).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)));
  return { metadata: { total_size: total }, weight_map: sorted };
}

async function removeStaleWeights(dir: string, keep: ReadonlySet<string>): Promise<void> {
  for (const name of await readdir(dir)) {
    const weights = name === WEIGHTS_FILE || name === INDEX_FILE || /^model-\d{5}-of-\d{5}\.safetensors$/.test(name);
    if (weights && !keep.has(name)) await rm(join(dir, name), { force: true });
  }
}
