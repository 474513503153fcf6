/**
 * Sends one datagram from each of `count` distinct source addresses to 127.0.0.1:`port`, then
 * exits: source ports 10000-59999 on 127.0.2.2, then on 127.0.3.2, and so on (all loopback), each
 * from a socket of its own, closed after its send. Run as a child process, so the process under
 * test reads its socket while the sends go on. Prints `sent N failed M` (M: addresses that could
 * not be bound, taken by some other socket).
 *
 *   node dist/test/helpers/source-cycler.js PORT COUNT [FIRST]
 */
import dgram from 'node:dgram';

const PORTS_PER_HOST = 50000;
const CONCURRENCY = 32;

const port = Number(process.argv[2]);
const count = Number(process.argv[3]);
const first = Number(process.argv[4] ?? 0);
const payload = Buffer.alloc(60, 0xee);
let next = 0;
let failed = 0;

function sendFrom(i: number): Promise<void> {
  const host = `127.0.${2 + Math.floor(i / PORTS_PER_HOST)}.2`;
  const sport = 10000 + (i % PORTS_PER_HOST);
  return new Promise((resolve) => {
    const s = dgram.createSocket('udp4');
    s.once('error', () => {
      failed++;
      s.close();
      resolve();
    });
    s.bind(sport, host, () => s.send(payload, port, '127.0.0.1', () => {
      s.close();
      resolve();
    }));
  });
}

async function worker(): Promise<void> {
  while (next < count) await sendFrom(first + next++);
}

await Promise.all(Array.from({ length: CONCURRENCY }, worker));
process.stdout.write(`sent ${count} failed ${failed}\n`);
