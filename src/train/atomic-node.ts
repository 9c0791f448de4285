// Crash-safe file writes (Node only). A killed run must never leave a half-written file or checkpoint:
// data goes to a temp file in the same directory (same filesystem, so rename is atomic), is fsynced,
// and only then renamed over the target.
import * as fs from 'node:fs';
import * as path from 'node:path';

let counter = 0;

/** A temp path next to `target`, unique within this process and across concurrent processes. */
export function tempPathFor(target: string): string {
  return `${target}.tmp-${process.pid}-${counter++}`;
}

/** fsync a directory so a rename inside it survives power loss (best effort: not supported everywhere). */
function fsyncDir(dir: string): void {
  let fd: number | undefined;
  try {
    fd = fs.openSync(dir, 'r');
    fs.fsyncSync(fd);
  } catch {
    // Windows and some filesystems refuse to open/fsync directories; the rename is still atomic.
  } finally {
    if (fd !== undefined) fs.closeSync(fd);
  }
}

/** Writes all bytes of `data` to an open fd and fsyncs it. */
function writeAllAndSync(fd: number, data: string | Uint8Array): void {
  const bytes = typeof data === 'string' ? new TextEncoder().encode(data) : data;
  let off = 0;
  while (off < bytes.byteLength) off += fs.writeSync(fd, bytes, off, bytes.byteLength - off);
  fs.fsyncSync(fd);
}

/** Writes a file atomically: readers see either the old content or the complete new content. */
export function writeFileAtomic(target: string, data: string | Uint8Array): void {
  const tmp = tempPathFor(target);
  const fd = fs.openSync(tmp, 'w');
  try {
    writeAllAndSync(fd, data);
  } catch (e) {
    fs.closeSync(fd);
    fs.rmSync(tmp, { force: true });
    throw e;
  }
  fs.closeSync(fd);
  try {
    fs.renameSync(tmp, target);
  } catch (e) {
    fs.rmSync(tmp, { force: true });
    throw new Error(`writeFileAtomic: cannot rename ${tmp} to ${target}: ${(e as Error).message}`);
  }
  fsyncDir(path.dirname(path.resolve(target)));
}

/** JSON.stringify + writeFileAtomic (pretty-printed, trailing newline). */
export function writeJSONAtomic(target: string, value: unknown, space: number = 2): void {
  writeFileAtomic(target, JSON.stringify(value, null, space) + '\n');
}

/**
 * An open temp file that becomes `target` on commit() (streaming counterpart of writeFileAtomic,
 * for files too large to build in memory). abort() deletes the temp file.
 */
export class AtomicFileWriter {
  readonly target: string;
  readonly tmp: string;
  private fd: number | undefined;
  bytesWritten = 0;

  constructor(target: string) {
    this.target = target;
    this.tmp = tempPathFor(target);
    this.fd = fs.openSync(this.tmp, 'w');
  }

  write(bytes: Uint8Array): void {
    if (this.fd === undefined) throw new Error(`AtomicFileWriter(${this.target}): write after commit/abort`);
    let off = 0;
    while (off < bytes.byteLength) off += fs.writeSync(this.fd, bytes, off, bytes.byteLength - off);
    this.bytesWritten += bytes.byteLength;
  }

  commit(): void {
    if (this.fd === undefined) throw new Error(`AtomicFileWriter(${this.target}): commit after commit/abort`);
    fs.fsyncSync(this.fd);
    fs.closeSync(this.fd);
    this.fd = undefined;
    fs.renameSync(this.tmp, this.target);
    fsyncDir(path.dirname(path.resolve(this.target)));
  }

  abort(): void {
    if (this.fd !== undefined) fs.closeSync(this.fd);
    this.fd = undefined;
    fs.rmSync(this.tmp, { force: true });
  }
}

function siblings(dir: string, marker: string): string[] {
  const parent = path.dirname(path.resolve(dir));
  const base = path.basename(dir) + marker;
  if (!fs.existsSync(parent)) return [];
  return fs
    .readdirSync(parent)
    .filter((n) => n.startsWith(base))
    .map((n) => path.join(parent, n));
}

/**
 * Repairs the state a crash inside checkpointDir can leave: if DIR is missing but DIR.old-* exists
 * (killed between the two renames), the old checkpoint is moved back; stale DIR.tmp-* are deleted.
 * Safe to call at startup; checkpointDir calls it first.
 */
export function recoverCheckpointDir(dir: string): void {
  const olds = siblings(dir, '.old-');
  if (!fs.existsSync(dir) && olds.length > 0) fs.renameSync(olds[0], dir);
  for (const o of siblings(dir, '.old-')) fs.rmSync(o, { recursive: true, force: true });
  for (const t of siblings(dir, '.tmp-')) fs.rmSync(t, { recursive: true, force: true });
}

function fsyncTree(dir: string): void {
  for (const name of fs.readdirSync(dir)) {
    const p = path.join(dir, name);
    if (fs.statSync(p).isDirectory()) fsyncTree(p);
    else {
      const fd = fs.openSync(p, 'r+'); // writable fd: Windows refuses to flush read-only handles
      fs.fsyncSync(fd);
      fs.closeSync(fd);
    }
  }
  fsyncDir(dir);
}

/** Moves the complete temp dir into place; the previous checkpoint is deleted only afterwards. */
function swapIntoPlace(tmp: string, dir: string): void {
  fsyncTree(tmp);
  const old = `${dir}.old-${process.pid}`;
  const hadOld = fs.existsSync(dir);
  if (hadOld) fs.renameSync(dir, old); // Linux cannot rename a directory over a non-empty one
  fs.renameSync(tmp, dir);
  fsyncDir(path.dirname(path.resolve(dir)));
  if (hadOld) fs.rmSync(old, { recursive: true, force: true });
}

function prepareTemp(dir: string): string {
  recoverCheckpointDir(dir);
  const tmp = `${dir}.tmp-${process.pid}`;
  fs.rmSync(tmp, { recursive: true, force: true });
  fs.mkdirSync(tmp, { recursive: true });
  return tmp;
}

/**
 * Writes a checkpoint directory atomically: `write(tmpDir)` fills DIR.tmp-PID, which then replaces DIR.
 * If write throws (or the process dies), DIR keeps the previous complete checkpoint.
 */
export async function checkpointDir(dir: string, write: (tmpDir: string) => void | Promise<void>): Promise<void> {
  const tmp = prepareTemp(dir);
  try {
    await write(tmp);
  } catch (e) {
    fs.rmSync(tmp, { recursive: true, force: true });
    throw e;
  }
  swapIntoPlace(tmp, dir);
}

/** Synchronous checkpointDir. */
export function checkpointDirSync(dir: string, write: (tmpDir: string) => void): void {
  const tmp = prepareTemp(dir);
  try {
    write(tmp);
  } catch (e) {
    fs.rmSync(tmp, { recursive: true, force: true });
    throw e;
  }
  swapIntoPlace(tmp, dir);
}

/** Writes a map of relative file names → contents as one atomic checkpoint directory. */
export function writeCheckpointFiles(dir: string, files: Record<string, string | Uint8Array>): void {
  checkpointDirSync(dir, (tmp) => {
    for (const [name, data] of Object.entries(files)) {
      const p = path.join(tmp, name);
      if (!path.resolve(p).startsWith(path.resolve(tmp) + path.sep)) {
        throw new Error(`writeCheckpointFiles: file name ${JSON.stringify(name)} escapes the checkpoint directory`);
      }
      fs.mkdirSync(path.dirname(p), { recursive: true });
      fs.writeFileSync(p, data);
    }
  });
}
