/**
 * `lanparty dump`: a live one-line-per-frame view of the LAN, like tcpdump -e: time, ingress port,
 * MACs and a short decode (ARP, IPv4/IPv6, ICMP, UDP, TCP, DHCP, DNS). Malformed frames print
 * "malformed ..." and the dump goes on.
 */
import { parseArgs } from 'node:util';
import type { PortInfo } from '../daemon/index.js';
import { defaultControlPath } from './status.js';
import { numberFlag, startCaptureStream } from './capture-stream.js';
import { decodeFrame, formatTimeUs } from './decode.js';

export const DUMP_HELP = `Usage: lanparty dump [options]

Print one line per frame the switch accepts: time, ingress port, MACs, and a decode of ARP,
IPv4/IPv6, ICMP, UDP, TCP, DHCP and DNS.

Options:
  -i, --port PORT         only frames entering this port (id or name); repeat for several
      --mac MAC           only frames from or to this MAC; repeat for several
  -c, --count N           stop after N frames
      --duration SECONDS  stop after this long
  -x, --hex               also print each frame as hex
      --control PATH      control socket (default $XDG_RUNTIME_DIR/lanparty/control.sock)
  -h, --help              this help
`;

export async function dump(argv: string[]): Promise<number> {
  const { values } = parseArgs({
    args: argv,
    options: {
      port: { type: 'string', short: 'i', multiple: true },
      mac: { type: 'string', multiple: true },
      count: { type: 'string', short: 'c' },
      duration: { type: 'string' },
      hex: { type: 'boolean', short: 'x' },
      control: { type: 'string' },
      help: { type: 'boolean', short: 'h' },
    },
    strict: true,
  });
  if (values.help) {
    process.stdout.write(DUMP_HELP);
    return 0;
  }
  const count = numberFlag('--count', values.count, { integer: true, min: 1 });
  const durationS = numberFlag('--duration', values.duration, { min: 0.001 });
  const ports = new Map<number, PortInfo>();
  const session = await startCaptureStream({ control: values.control ?? defaultControlPath(), ports: values.port ?? [], macs: values.mac ?? [], count, durationS, label: 'dump' }, (r) => {
    if (r.type === 'port') {
      ports.set(r.portId, r.info);
    } else if (r.type === 'frame') {
      const name = ports.get(r.portId)?.name ?? '?';
      let line = `${formatTimeUs(r.timestampUs)} [${r.portId} ${name}] ${decodeFrame(r.frame)}\n`;
      if (values.hex) line += r.frame.toString('hex').replace(/(.{32})/g, '$1\n').replace(/^/gm, '\t') + '\n';
      process.stdout.write(line);
    } else {
      process.stdout.write(`-- lanparty dropped ${r.stats.dropped} frames so far: this reader is too slow\n`);
    }
  });
  const result = await session.done;
  process.stderr.write(`lanparty dump: ${result.frames} frames (${result.reason})\n`);
  return 0;
}
