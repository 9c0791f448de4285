// `lineage` as a child process for end-to-end CLI tests: the package's bin, one thread, stdout and stderr
// captured; the exit code is `code` (null when the process was killed, e.g. by the timeout).
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

/** the package root (tests run from dist/test/...) */
export const packageRoot = fileURLToPath(new URL('../../../', import.meta.url));
export const lineageBin = join(packageRoot, 'bin', 'lineage.js');

export interface CliResult {
  code: number | null;
  out: string;
  err: string;
}

export function runLineage(args: string[], env: Record<string, string> = {}, timeoutMs = 120_000): CliResult {
  const r = spawnSync(process.execPath, [lineageBin, ...args], {
    encoding: 'utf8',
    env: { ...process.env, LINEAGE_THREADS: '1', ...env },
    timeout: timeoutMs,
  });
  return { code: r.status, out: r.stdout, err: r.stderr };
}
