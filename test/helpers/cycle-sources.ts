/**
 * Runs test/helpers/source-cycler.js as a child process: one datagram to 127.0.0.1:`port` from
 * each of `count` source addresses, starting at address index `first`. Resolves with the number
 * of datagrams sent (those whose source could be bound).
 */
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';

const CYCLER = fileURLToPath(new URL('./source-cycler.js', import.meta.url));

export function cycleSources(port: number, count: number, first = 0): Promise<number> {
  return new Promise((resolve, reject) => {
    const c = spawn(process.execPath, [CYCLER, String(port), String(count), String(first)], { stdio: ['ignore', 'pipe', 'inherit'] });
    let out = '';
    c.stdout.on('data', (d) => { out += d; });
    c.on('error', reject);
    c.on('exit', (code) => {
      const m = /sent (\d+) failed (\d+)/.exec(out);
      if (code !== 0 || !m) reject(new Error(`source-cycler exited ${code}: ${out}`));
      else resolve(Number(m[1]) - Number(m[2]));
    });
  });
}
