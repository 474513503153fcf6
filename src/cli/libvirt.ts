/**
 * `lanparty libvirt NAME`: prints the libvirt `<interface>` element that joins a domain to the
 * running lanparty, with NAME's stable MAC. libvirt's socket-style interfaces become QEMU's legacy
 * `-netdev socket` (docs/qemu-transports.md §9), which speaks the same wire formats as lanparty's
 * ports:
 *   mcast  <source address= port=/>                    → lanparty's mcast:// group
 *   udp    <source address= port=><local .../></source> → lanparty's udp:// listener
 *   client <source address= port=/>                    → lanparty's tcp:// listener (QEMU connects)
 *   server <source address= port=/>                    → lanparty's tcp+connect:// port (QEMU listens)
 * The addresses come from the running lanparty (control command `transports`), so they match it.
 */
import { parseArgs } from 'node:util';
import { request } from '../control/index.js';
import { LanpartyError } from '../util/index.js';
import { formatMac, macForName } from '../wire/index.js';
import { defaultControlPath } from './status.js';
import { checkTransports, type TransportInfo } from './qemu.js';

export const LIBVIRT_TYPES = ['mcast', 'udp', 'client', 'server'] as const;
export type LibvirtType = typeof LIBVIRT_TYPES[number];

export const LIBVIRT_HELP = `Usage: lanparty libvirt NAME [--type mcast|udp|client|server] [options]

Print the libvirt <interface> XML that joins a domain to the running lanparty, with NAME's
stable MAC (lanparty mac NAME). Add it with virsh edit DOMAIN, or
  virsh attach-device DOMAIN iface.xml --config

Types (default: udp if lanparty has a udp:// port, else mcast, client, server):
  udp     QEMU sends to lanparty's udp:// port from its own local port; survives lanparty restarts
  mcast   QEMU joins lanparty's multicast group (libvirt cannot name the interface: QEMU joins on
          the interface of the route to the group)
  client  QEMU connects to lanparty's tcp:// port; it never reconnects after a lanparty restart
  server  QEMU listens and lanparty connects out (needs lanparty up --port tcp+connect://IP:PORT)

Options:
  -t, --type TYPE     one of mcast, udp, client, server
      --model MODEL   NIC model (default virtio), e.g. e1000, rtl8139
      --control PATH  control socket (default $XDG_RUNTIME_DIR/lanparty/control.sock)
  -h, --help          this help
`;

function fields(netdev: string): Map<string, string> {
  const out = new Map<string, string>();
  for (const part of netdev.split(',').slice(1)) {
    const eq = part.indexOf('=');
    if (eq > 0) out.set(part.slice(0, eq), part.slice(eq + 1));
  }
  return out;
}

function attr(v: string): string {
  return v.replace(/&/g, '&amp;').replace(/'/g, '&apos;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
}

export interface InterfaceXml {
  type: LibvirtType;
  xml: string;
  /** Notes for stderr: what the user should know about this choice. */
  notes: string[];
}

const IPV4 = /^\d{1,3}(\.\d{1,3}){3}$/;

/** Builds the interface for `type` (or the best one) from lanparty's transports. Pure. */
export function interfaceXml(transports: TransportInfo[], name: string, type: LibvirtType | undefined, model = 'virtio'): InterfaceXml {
  const mac = formatMac(macForName(name));
  const have = transports.filter((t) => t.netdev !== null && t.state !== 'closed');
  const pick: Record<LibvirtType, () => TransportInfo | undefined> = {
    udp: () => have.find((t) => t.kind === 'udp'),
    mcast: () => have.find((t) => t.kind === 'mcast'),
    client: () => have.find((t) => t.kind === 'tcp' && t.netdev!.includes('server=off')),
    server: () => have.find((t) => t.kind === 'tcp' && t.netdev!.includes('server=on')),
  };
  const list = transports.map((t) => t.url).join(', ') || '(none)';
  const chosen = type ?? (['udp', 'mcast', 'client', 'server'] as const).find((k) => pick[k]() !== undefined);
  if (chosen === undefined) throw new LanpartyError('LP_ERR_USAGE', `lanparty has no port a libvirt domain can join (it has ${list}); start it with a udp://, mcast:// or tcp:// port`);
  const t = pick[chosen]();
  if (t === undefined) {
    const hint: Record<LibvirtType, string> = {
      udp: 'lanparty up --port udp://127.0.0.1:33001',
      mcast: 'lanparty up --port mcast://230.0.0.1:33000?localaddr=IP',
      client: 'lanparty up --port tcp://127.0.0.1:33002',
      server: `lanparty up --port tcp+connect://127.0.0.1:PORT (one per domain; then ${name} listens on PORT)`,
    };
    throw new LanpartyError('LP_ERR_USAGE', `--type ${chosen}: lanparty has no matching port (it has ${list}); add one, e.g. ${hint[chosen]}`);
  }
  const f = fields(t.netdev!);
  const notes: string[] = [];
  let source: string;
  switch (chosen) {
    case 'udp': {
      const [rh, rp, lh, lp] = [f.get('remote.host'), f.get('remote.port'), f.get('local.host'), f.get('local.port')];
      if (!rh || !rp || !lh || !lp) throw new LanpartyError('LP_ERR_INTERNAL', `transport ${t.url}: unexpected -netdev ${t.netdev}`);
      source = `  <source address='${attr(rh)}' port='${attr(rp)}'>\n    <local address='${attr(lh)}' port='${attr(lp)}'/>\n  </source>`;
      notes.push(`udp: the domain sends from ${lh}:${lp} to lanparty at ${rh}:${rp}; it keeps working across lanparty restarts`);
      break;
    }
    case 'mcast': {
      const [group, port] = (f.get('mcast') ?? '').split(':');
      source = `  <source address='${attr(group)}' port='${attr(port)}'/>`;
      const local = f.get('localaddr');
      notes.push(`mcast: libvirt cannot set localaddr, so QEMU joins ${group} on the interface of the route to it` +
        (local ? `; lanparty joined on ${local}: both must be the same interface (ip route get ${group}), or use --type udp` : ''));
      break;
    }
    case 'client':
    case 'server': {
      const host = f.get('addr.host') ?? '127.0.0.1';
      source = `  <source address='${attr(host)}' port='${attr(f.get('addr.port') ?? '')}'/>`;
      notes.push(chosen === 'client'
        ? `client: QEMU connects to lanparty at ${host}:${f.get('addr.port')} when the domain starts and never reconnects: start the domain after lanparty, and restart it after a lanparty restart`
        : `server: the domain listens on ${host}:${f.get('addr.port')} and lanparty (${t.url}) connects to it, reconnecting whenever either side restarts`);
      break;
    }
  }
  if (!IPV4.test(source.match(/address='([^']*)'/)?.[1] ?? '')) {
    throw new LanpartyError('LP_ERR_USAGE', `--type ${chosen}: ${t.url} has no IPv4 address, and libvirt's socket interfaces take IPv4 only`);
  }
  const xml = [
    `<interface type='${chosen}'>`,
    `  <mac address='${mac}'/>`,
    source,
    `  <model type='${attr(model)}'/>`,
    `</interface>`,
    '',
  ].join('\n');
  return { type: chosen, xml, notes };
}

export async function libvirt(argv: string[]): Promise<number> {
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: {
      type: { type: 'string', short: 't' },
      model: { type: 'string' },
      control: { type: 'string' },
      help: { type: 'boolean', short: 'h' },
    },
    strict: true,
  });
  if (values.help) {
    process.stdout.write(LIBVIRT_HELP);
    return 0;
  }
  if (positionals.length !== 1) throw new LanpartyError('LP_ERR_USAGE', 'lanparty libvirt: expected one guest name, e.g. lanparty libvirt alice --type udp');
  const name = positionals[0];
  if (!/^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$/.test(name)) throw new LanpartyError('LP_ERR_USAGE', `guest name "${name}": use 1-63 letters, digits, ".", "_" or "-", starting with a letter or digit`);
  const type = values.type;
  if (type !== undefined && !(LIBVIRT_TYPES as readonly string[]).includes(type)) {
    throw new LanpartyError('LP_ERR_USAGE', `--type "${type}": expected one of ${LIBVIRT_TYPES.join(', ')}`);
  }
  const model = values.model ?? 'virtio';
  if (!/^[A-Za-z0-9_.-]+$/.test(model)) throw new LanpartyError('LP_ERR_USAGE', `--model "${model}": expected a libvirt NIC model such as virtio, e1000, rtl8139`);
  const control = values.control ?? defaultControlPath();
  const transports = checkTransports(await request(control, 'transports', { guest: name, netdevId: 'n0' }), name, 'n0', control);
  const out = interfaceXml(transports, name, type as LibvirtType | undefined, model);
  for (const n of out.notes) process.stderr.write(`lanparty libvirt: ${n}\n`);
  process.stdout.write(out.xml);
  return 0;
}
