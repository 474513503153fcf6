/**
 * `lanparty capture`: writes what the switch sees as pcapng, one Interface Description Block per
 * switch port (if_name = port name) so Wireshark shows where each frame entered, Enhanced Packet
 * Blocks with microsecond timestamps. To a file, a ring of files (like dumpcap -b), or stdout.
 * Writes go to the OS with write(2) per batch and are never fsync'ed: a capture is for looking at,
 * and an fsync per batch would make the client slow enough for lanparty to drop frames.
 */
import { parseArgs } from 'node:util';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { LanpartyError } from '../util/index.js';
import { PcapngInterfaces, enhancedPacketBlock, sectionHeaderBlock } from '../wire/index.js';
import type { PortInfo } from '../daemon/index.js';
import { defaultControlPath } from './status.js';
import { numberFlag, startCaptureStream } from './capture-stream.js';

export const CAPTURE_HELP = `Usage: lanparty capture -w FILE|- [options]

Capture the frames the switch accepts as pcapng (Wireshark, tshark), one interface per switch
port, named after the port, so a viewer shows where each frame entered.

Options:
  -w, --write FILE        write to FILE; "-" writes to stdout:
                            lanparty capture -w - | wireshark -k -i -
  -i, --port PORT         only frames entering this port (id or name); repeat for several
      --mac MAC           only frames from or to this MAC; repeat for several
  -c, --count N           stop after N frames
      --duration SECONDS  stop after this long
      --ring-size MB      start a new file when the current one reaches MB megabytes (needs -w FILE)
      --ring-files N      keep the newest N files of the ring (default 2 with --ring-size)
      --control PATH      control socket (default $XDG_RUNTIME_DIR/lanparty/control.sock)
  -h, --help              this help

Ring files are named FILE_NNNNN_YYYYMMDDhhmmss.pcapng, as dumpcap names them.
`;

/** One output file (or stdout) with its own pcapng section. */
class Sink {
  fd = -1;
  bytes = 0;
  constructor(public file: string | null) {}
  open(): void {
    this.fd = this.file === null ? 1 : fs.openSync(this.file, 'w');
    this.bytes = 0;
  }
  write(b: Buffer): void {
    let o = 0;
    while (o < b.length) {
      try {
        o += fs.writeSync(this.fd, b, o, b.length - o);
      } catch (err) {
        // stdout may be a non-blocking pipe: wait for the reader instead of failing.
        if ((err as NodeJS.ErrnoException).code === 'EAGAIN') { Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 2); continue; }
        throw err;
      }
    }
    this.bytes += b.length;
  }
  close(): void {
    if (this.fd > 1) fs.closeSync(this.fd);
    this.fd = -1;
  }
}

function stamp(d: Date): string {
  const p = (n: number, w = 2) => String(n).padStart(w, '0');
  return `${d.getFullYear()}${p(d.getMonth() + 1)}${p(d.getDate())}${p(d.getHours())}${p(d.getMinutes())}${p(d.getSeconds())}`;
}

export async function capture(argv: string[]): Promise<number> {
  const { values } = parseArgs({
    args: argv,
    options: {
      write: { type: 'string', short: 'w' },
      port: { type: 'string', short: 'i', multiple: true },
      mac: { type: 'string', multiple: true },
      count: { type: 'string', short: 'c' },
      duration: { type: 'string' },
      'ring-size': { type: 'string' },
      'ring-files': { type: 'string' },
      control: { type: 'string' },
      help: { type: 'boolean', short: 'h' },
    },
    strict: true,
  });
  if (values.help) {
    process.stdout.write(CAPTURE_HELP);
    return 0;
  }
  const target = values.write ?? (process.stdout.isTTY ? undefined : '-');
  if (target === undefined) throw new LanpartyError('LP_ERR_USAGE', 'capture: -w FILE is missing (use -w - to write pcapng to a pipe, e.g. | wireshark -k -i -)');
  const count = numberFlag('--count', values.count, { integer: true, min: 1 });
  const durationS = numberFlag('--duration', values.duration, { min: 0.001 });
  const ringMb = numberFlag('--ring-size', values['ring-size'], { min: 0.001 });
  const ringFiles = values['ring-files'] !== undefined ? numberFlag('--ring-files', values['ring-files'], { integer: true, min: 1 }) : ringMb > 0 ? 2 : 0;
  if ((ringMb > 0 || ringFiles > 0) && target === '-') throw new LanpartyError('LP_ERR_USAGE', 'capture: --ring-size/--ring-files need -w FILE, not stdout');
  if (ringFiles > 0 && ringMb === 0) throw new LanpartyError('LP_ERR_USAGE', 'capture: --ring-files needs --ring-size MB (when to start the next file)');

  const ports = new Map<number, PortInfo>();
  const order: number[] = [];
  const ifaces = new PcapngInterfaces();
  const ringed: string[] = [];
  let fileNo = 0;
  const ext = target === '-' ? '' : path.extname(target) || '.pcapng';
  const stem = target === '-' ? '' : target.slice(0, target.length - path.extname(target).length);
  const nextName = () => `${stem}_${String(++fileNo).padStart(5, '0')}_${stamp(new Date())}${ext}`;
  const sink = new Sink(target === '-' ? null : ringMb > 0 ? nextName() : target);

  const shb = sectionHeaderBlock({ application: 'lanparty capture', os: `${process.platform} node ${process.version}` });
  const idbFor = (id: number) => {
    const info = ports.get(id) ?? { name: `port ${id}`, kind: 'unknown', endpoint: '' };
    return ifaces.add(id, { name: info.name, description: `lanparty port ${id} (${info.kind}${info.endpoint ? ' ' + info.endpoint : ''})` });
  };
  const startSection = () => {
    sink.open();
    if (sink.file !== null) ringed.push(sink.file);
    ifaces.reset();
    sink.write(shb);
    // Each ring file stands alone: repeat the IDBs of every port seen so far.
    for (const id of order) sink.write(idbFor(id));
  };
  startSection();

  const session = await startCaptureStream({ control: values.control ?? defaultControlPath(), ports: values.port ?? [], macs: values.mac ?? [], count, durationS, label: 'capture' }, (r) => {
    if (r.type === 'port') {
      ports.set(r.portId, r.info);
      return;
    }
    if (r.type !== 'frame') return;
    // Like dumpcap, start the next file when a frame arrives for a full one: no empty last file.
    if (ringMb > 0 && sink.bytes >= ringMb * 1e6) {
      sink.close();
      sink.file = nextName();
      startSection();
      while (ringed.length > ringFiles) {
        const old = ringed.shift()!;
        try { fs.unlinkSync(old); } catch { /* already gone */ }
      }
    }
    if (!order.includes(r.portId)) order.push(r.portId);
    if (ifaces.idOf(r.portId) < 0) sink.write(idbFor(r.portId));
    sink.write(enhancedPacketBlock(ifaces.idOf(r.portId), r.timestampUs, r.frame));
  });
  const result = await session.done;
  sink.close();
  process.stderr.write(`lanparty capture: ${result.frames} frames (${result.reason})${result.dropped > 0 ? `; lanparty dropped ${result.dropped} frames because this reader was too slow` : ''}${ringed.length > 0 ? `; files: ${ringed.join(' ')}` : ''}\n`);
  return 0;
}
