// `lineage serve` as a real child process for end-to-end tests: port 0 (the OS picks one), one engine
// thread, resolved once the server prints its address; rejects with the output when the process exits first.
import { spawn } from 'node:child_process';

export interface ServeProcess {
  url: string;
  proc: ReturnType<typeof spawn>;
  /** everything the process printed so far (stdout and stderr) */
  out: () => string;
}

export function startServe(args: string[]): Promise<ServeProcess> {
  const proc = spawn(
    process.execPath,
    ['--experimental-wasm-relaxed-simd', 'bin/lineage.js', 'serve', '--port', '0', ...args],
    { env: { ...process.env, LINEAGE_THREADS: '1' } },
  );
  let out = '';
  proc.stdout.on('data', (d) => (out += d));
  proc.stderr.on('data', (d) => (out += d));
  return new Promise((resolve, reject) => {
    const timer = setInterval(() => {
      const m = /on (http:\/\/[^ ]+) /.exec(out);
      if (m) {
        clearInterval(timer);
        resolve({ url: m[1]!, proc, out: () => out });
      }
    }, 50);
    proc.on('exit', (code) => {
      clearInterval(timer);
      reject(new Error(`lineage serve exited ${code}:\n${out}`));
    });
  });
}
