/**
 * `lanparty inject`: puts one frame onto the LAN, replacing `echo ... | socat`. The frame comes
 * from --hex, --file, or a template (arp-request, gratuitous-arp, broadcast-ping), built here with
 * the wire emitters; the daemon sends it out of a port (--into) or as if it entered one (--from).
 * Every validation error names the bad flag.
 */
import { parseArgs } from 'node:util';
import { readFileSync } from 'node:fs';
import { request } from '../control/index.js';
import { LanpartyError } from '../util/index.js';
import { BROADCAST_MAC, ETHERTYPE_ARP, ETHERTYPE_IPV4, ETH_MIN_FRAME_BYTES, buildFrame, macForName, parseMac, formatMac, emitArp, ARP_OP_REQUEST, ARP_PACKET_BYTES, emitIpv4, parseIpv4Address, IPV4_HEADER_BYTES, IP_PROTO_ICMP, emitIcmpEcho, ICMP_ECHO_REQUEST, ICMP_HEADER_BYTES } from '../wire/index.js';
import { defaultControlPath } from './status.js';

export const INJECT_HELP = `Usage: lanparty inject (--hex HEX | --file FILE | TEMPLATE ...) [--into PORT | --from PORT]

Put one Ethernet frame onto the LAN.

Frames:
  --hex HEX                              the whole frame as hex (spaces and colons allowed)
  --file FILE                            the whole frame as raw bytes from FILE
  arp-request --target-ip IP [--src-ip IP]   who-has IP (broadcast)
  gratuitous-arp --ip IP                 announce IP is-at the source MAC (broadcast)
  broadcast-ping --src-ip IP --dst-ip IP [--seq N]
                                         ICMP echo request to the broadcast MAC

Where:
      --into PORT     send out of this port only (id or name), as if the switch forwarded it there
      --from PORT     as if it entered on this port: learned and forwarded like a guest's frame
      (neither)       send out of every port

Options:
      --src-mac MAC   source MAC for templates (default ${formatMac(macForName('lanparty-inject'))}, locally administered)
      --control PATH  control socket (default $XDG_RUNTIME_DIR/lanparty/control.sock)
  -h, --help          this help
`;

function ipFlag(name: string, text: string | undefined, required: boolean): number {
  if (text === undefined) {
    if (required) throw new LanpartyError('LP_ERR_USAGE', `inject: ${name} is missing`);
    return 0;
  }
  try {
    return parseIpv4Address(text);
  } catch {
    throw new LanpartyError('LP_ERR_USAGE', `inject: ${name} "${text}" is not an IPv4 address (expected a.b.c.d)`);
  }
}

/** Pads to the 60-byte Ethernet minimum, as a NIC would before sending. */
function padded(f: Buffer): Buffer {
  return f.length >= ETH_MIN_FRAME_BYTES ? f : Buffer.concat([f, Buffer.alloc(ETH_MIN_FRAME_BYTES - f.length)]);
}

export function arpFrame(srcMac: number, senderIp: number, targetIp: number): Buffer {
  const p = Buffer.alloc(ARP_PACKET_BYTES);
  emitArp({ operation: ARP_OP_REQUEST, senderMac: srcMac, senderIp, targetMac: 0, targetIp }, p, 0);
  return padded(buildFrame(BROADCAST_MAC, srcMac, ETHERTYPE_ARP, p));
}

export function pingFrame(srcMac: number, srcIp: number, dstIp: number, seq: number): Buffer {
  const data = Buffer.from('lanparty inject ping');
  const p = Buffer.alloc(IPV4_HEADER_BYTES + ICMP_HEADER_BYTES + data.length);
  emitIcmpEcho({ type: ICMP_ECHO_REQUEST, code: 0, ident: 0x4c50, seq, data }, p, IPV4_HEADER_BYTES);
  emitIpv4({ src: srcIp, dst: dstIp, protocol: IP_PROTO_ICMP, ttl: 64, ident: seq, dontFragment: false, payloadBytes: ICMP_HEADER_BYTES + data.length }, p, 0);
  return padded(buildFrame(BROADCAST_MAC, srcMac, ETHERTYPE_IPV4, p));
}

export async function inject(argv: string[]): Promise<number> {
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: {
      hex: { type: 'string' },
      file: { type: 'string' },
      into: { type: 'string' },
      from: { type: 'string' },
      'src-mac': { type: 'string' },
      'target-ip': { type: 'string' },
      'src-ip': { type: 'string' },
      'dst-ip': { type: 'string' },
      ip: { type: 'string' },
      seq: { type: 'string' },
      control: { type: 'string' },
      help: { type: 'boolean', short: 'h' },
    },
    strict: true,
  });
  if (values.help) {
    process.stdout.write(INJECT_HELP);
    return 0;
  }
  let srcMac = macForName('lanparty-inject');
  if (values['src-mac'] !== undefined) {
    try {
      srcMac = parseMac(values['src-mac']);
    } catch {
      throw new LanpartyError('LP_ERR_USAGE', `inject: --src-mac "${values['src-mac']}" is not a MAC address (expected six hex pairs like 02:00:00:12:34:56)`);
    }
  }
  const sources = [values.hex !== undefined, values.file !== undefined, positionals.length > 0].filter(Boolean).length;
  if (sources !== 1) throw new LanpartyError('LP_ERR_USAGE', 'inject: give exactly one of --hex HEX, --file FILE or a template (arp-request, gratuitous-arp, broadcast-ping); see lanparty inject --help');
  if (values.into !== undefined && values.from !== undefined) throw new LanpartyError('LP_ERR_USAGE', 'inject: give --into PORT or --from PORT, not both');
  let frame: Buffer;
  if (values.hex !== undefined) {
    const hex = values.hex.replace(/[\s:]/g, '');
    if (!/^([0-9a-fA-F]{2})+$/.test(hex)) throw new LanpartyError('LP_ERR_USAGE', `inject: --hex is not an even number of hex digits`);
    frame = Buffer.from(hex, 'hex');
  } else if (values.file !== undefined) {
    try {
      frame = readFileSync(values.file);
    } catch (err) {
      throw new LanpartyError('LP_ERR_USAGE', `inject: --file ${values.file}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`, { cause: err });
    }
  } else {
    const [template, ...extra] = positionals;
    if (extra.length > 0) throw new LanpartyError('LP_ERR_USAGE', `inject: unexpected argument "${extra[0]}"`);
    switch (template) {
      case 'arp-request':
        frame = arpFrame(srcMac, ipFlag('--src-ip', values['src-ip'], false), ipFlag('--target-ip', values['target-ip'], true));
        break;
      case 'gratuitous-arp': {
        const ip = ipFlag('--ip', values.ip, true);
        frame = arpFrame(srcMac, ip, ip);
        break;
      }
      case 'broadcast-ping': {
        const seq = values.seq === undefined ? 1 : Number(values.seq);
        if (!Number.isInteger(seq) || seq < 0 || seq > 0xffff) throw new LanpartyError('LP_ERR_USAGE', `inject: --seq "${values.seq}" is not 0..65535`);
        frame = pingFrame(srcMac, ipFlag('--src-ip', values['src-ip'], true), ipFlag('--dst-ip', values['dst-ip'], true), seq);
        break;
      }
      default:
        throw new LanpartyError('LP_ERR_USAGE', `inject: unknown template "${template}" (expected arp-request, gratuitous-arp or broadcast-ping)`);
    }
  }
  if (frame.length < 14) throw new LanpartyError('LP_ERR_USAGE', `inject: the frame is ${frame.length} bytes; an Ethernet frame needs at least 14 (destination, source, type)`);
  const r = (await request(values.control ?? defaultControlPath(), 'inject', { hex: frame.toString('hex'), into: values.into, from: values.from })) as
    { mode: string; port?: number; portName?: string; ports?: number[]; bytes: number };
  const where = r.mode === 'flood' ? `out of every port (${r.ports?.length ?? 0})` : r.mode === 'into' ? `out of port ${r.port} (${r.portName})` : `as if from port ${r.port} (${r.portName})`;
  process.stdout.write(`injected ${r.bytes} bytes ${where}\n`);
  return 0;
}
