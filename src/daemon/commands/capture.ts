/**
 * The `capture` control command: installs a Mirror tap on the switch and, after its JSON reply,
 * takes the connection over and streams binary records (see switch/mirror.ts) until the client
 * disconnects, which removes the tap. Used by `lanparty capture` and `lanparty dump`.
 *   args: {ports?: Array<number|string>, macs?: string[]}
 * Backpressure: records are written while the socket's buffer is under HIGH_WATER_BYTES; beyond
 * that they wait in the mirror's bounded queue, and frames that do not fit are dropped and counted.
 */
import type { ControlConnection, ControlServer } from '../../control/index.js';
import { LanpartyError } from '../../util/index.js';
import { parseMac } from '../../wire/index.js';
import { Mirror, statsRecord, type Switch } from '../../switch/index.js';
import { resolvePort } from './resolve-port.js';

const HIGH_WATER_BYTES = 1 << 20;
const STATS_INTERVAL_MS = 1000;

/** What the capture command uses of the daemon. */
export interface CaptureHost {
  readonly control: Pick<ControlServer, 'register'>;
  readonly sw: Pick<Switch, 'ports' | 'addTap' | 'removeTap'>;
}

export function register(d: CaptureHost): void {
  d.control.register({
    name: 'capture',
    usage: 'capture {ports?: (id|name)[], macs?: string[]}: stream frames as binary records after the reply',
    handler: (args, conn) => startCapture(d, args, conn),
  });
}

function startCapture(d: CaptureHost, args: Record<string, unknown>, conn: ControlConnection): unknown {
  const portSpecs = args.ports === undefined ? [] : Array.isArray(args.ports) ? args.ports : [args.ports];
  const macSpecs = args.macs === undefined ? [] : Array.isArray(args.macs) ? args.macs : [args.macs];
  const portIds = portSpecs.map((s) => resolvePort(d, s, '--port').id);
  const macs = macSpecs.map((m) => {
    try {
      return parseMac(String(m));
    } catch (err) {
      throw new LanpartyError('LP_ERR_USAGE', `--mac: ${(err as Error).message}`);
    }
  });
  const mirror = new Mirror({ portIds, macs });
  const sock = conn.socket;
  conn.takenOver = true;

  let scheduled = false;
  let lastDropped = 0;
  const drain = () => {
    scheduled = false;
    if (sock.destroyed) return;
    let r: Buffer | undefined;
    while (sock.writableLength < HIGH_WATER_BYTES && (r = mirror.take()) !== undefined) sock.write(r);
  };
  mirror.onReadable(() => {
    if (!scheduled && !sock.destroyed) {
      scheduled = true;
      setImmediate(drain);   // one write burst per event-loop turn, not one per frame
    }
  });
  sock.on('drain', drain);
  const timer = setInterval(() => {
    if (mirror.dropped !== lastDropped && !sock.destroyed) {
      lastDropped = mirror.dropped;
      sock.write(statsRecord({ frames: mirror.frames, dropped: mirror.dropped }));
    }
  }, STATS_INTERVAL_MS);
  timer.unref();
  const stop = () => {
    d.sw.removeTap(mirror.tap);
    clearInterval(timer);
  };
  sock.once('close', stop);

  // The reply is written by the server after this returns; announce ports after it.
  setImmediate(() => {
    if (sock.destroyed) return stop();
    for (const p of d.sw.ports) mirror.announce(p);
    d.sw.addTap(mirror.tap);
  });
  return { ports: portIds, macs: macSpecs.map(String), switchPorts: d.sw.ports.length };
}

// The record format for clients (cli may not import switch directly).
export { RecordReader, type StreamRecord, type PortInfo } from '../../switch/index.js';
