/**
 * The launcher's control commands (`lanparty qemu`, `lanparty libvirt`):
 *   transports {guest?, netdevId?}: each transport's url, kind, state, address and the QEMU
 *     -netdev value that joins `guest` to it (null for ports guests cannot attach to: tap, vxlan).
 *   guest:add {name, mac, transport?, pid?}: names a guest. The name lives as long as the
 *     connection that added it (the launcher keeps it open while QEMU runs), so a guest that is gone
 *     leaves `status` by itself; `guest:add` again after a lanparty restart brings it back.
 *   guests: the named guests (registered now, or named in the config with --guest / guests = [...]).
 * The names show in `status` (services.guests), the web view and anything that reads status.
 */
import type { ControlServer } from '../../control/index.js';
import type { Config } from '../../config/index.js';
import type { Transport } from '../../transports/index.js';
import { type Logger, LanpartyError } from '../../util/index.js';
import type { StatusReport } from '../status.js';
import { formatMac, macForName, parseMac } from '../../wire/index.js';

/** Longest guest name: it becomes a DNS label and a socket file name. */
const MAX_NAME_LENGTH = 63;
/** Most guests registered at once; one more is refused. */
const MAX_GUESTS = 4096;

export interface GuestRow {
  name: string;
  mac: string;
  /** "running": a launcher holds its registration; "configured": named in the config only. */
  state: 'running' | 'configured';
  transport: string | null;
  pid: number | null;
  sinceS: number | null;
  /** Switch port the MAC was last learned on, and IPv4 addresses seen from it. */
  port: number | null;
  portName: string | null;
  ips: string[];
}

interface Registration {
  name: string;
  mac: number;
  transport: string | null;
  pid: number | null;
  sinceMs: number;
}

export function checkGuestName(name: unknown, field = 'name'): string {
  if (typeof name !== 'string' || !/^[A-Za-z0-9][A-Za-z0-9_.-]*$/.test(name) || name.length > MAX_NAME_LENGTH) {
    throw new LanpartyError('LP_ERR_USAGE', `${field} ${JSON.stringify(name)}: a guest name is 1-${MAX_NAME_LENGTH} letters, digits, "-", "_" or "." and starts with a letter or digit`);
  }
  return name;
}

/** What the guests command uses of the daemon. */
export interface GuestsHost {
  readonly control: Pick<ControlServer, 'register' | 'emit'>;
  readonly config: Pick<Config, 'guests'>;
  readonly transports: readonly Transport[];
  readonly log: Logger;
  readonly statusSections: Map<string, () => unknown>;
  status(): StatusReport;
}

export function register(d: GuestsHost): void {
  const registered = new Map<string, Registration>();

  const rows = (): GuestRow[] => {
    const byMac = new Map(d.status().macs.map((m) => [m.mac, m] as const));
    const out: GuestRow[] = [];
    const add = (name: string, mac: number, r: Registration | null) => {
      const text = formatMac(mac);
      const seen = byMac.get(text);
      out.push({
        name, mac: text, state: r ? 'running' : 'configured', transport: r?.transport ?? null, pid: r?.pid ?? null,
        sinceS: r ? Math.round((Date.now() - r.sinceMs) / 1000) : null,
        port: seen?.port ?? null, portName: seen?.portName ?? null, ips: seen?.ips ?? [],
      });
    };
    for (const r of registered.values()) add(r.name, r.mac, r);
    for (const g of d.config.guests) if (!registered.has(g)) add(g, macForName(g), null);
    return out.sort((a, b) => a.name.localeCompare(b.name));
  };
  // Computed without d.status() (rows() calls it): the section must not recurse into itself.
  d.statusSections.set('guests', () => {
    const out: Array<{ name: string; mac: string; state: string; transport: string | null; pid: number | null }> = [];
    for (const r of registered.values()) out.push({ name: r.name, mac: formatMac(r.mac), state: 'running', transport: r.transport, pid: r.pid });
    for (const g of d.config.guests) if (!registered.has(g)) out.push({ name: g, mac: formatMac(macForName(g)), state: 'configured', transport: null, pid: null });
    return out.sort((a, b) => a.name.localeCompare(b.name));
  });

  d.control.register({
    name: 'transports',
    usage: 'transports {guest?, netdevId?}: each transport with the QEMU -netdev value for the guest',
    handler: (args) => {
      const guest = args.guest === undefined ? 'vm1' : checkGuestName(args.guest, 'guest');
      const id = typeof args.netdevId === 'string' && /^[A-Za-z][A-Za-z0-9_.-]*$/.test(args.netdevId) ? args.netdevId : 'n0';
      return d.transports.map((t) => {
        const st = t.status();
        return { url: t.url, kind: t.kind, state: st.state, address: st.address, portCount: st.portCount, netdev: t.qemuNetdev(guest, id) };
      });
    },
  });

  const namesOf = new WeakMap<object, Map<string, Registration>>();
  d.control.register({
    name: 'guest:add',
    usage: 'guest:add {name, mac?, transport?, pid?}: name a guest while this connection stays open',
    handler: (args, conn) => {
      const name = checkGuestName(args.name);
      let mac = macForName(name);
      if (args.mac !== undefined) {
        try {
          mac = parseMac(String(args.mac));
        } catch (err) {
          throw new LanpartyError('LP_ERR_USAGE', `mac: ${(err as Error).message}`);
        }
      }
      const old = registered.get(name);
      if (old === undefined && registered.size >= MAX_GUESTS) throw new LanpartyError('LP_ERR_USAGE', `guest:add ${name}: ${MAX_GUESTS} guests are registered already`);
      const r: Registration = {
        name, mac,
        transport: typeof args.transport === 'string' ? args.transport : null,
        pid: typeof args.pid === 'number' ? args.pid : null,
        sinceMs: Date.now(),
      };
      registered.set(name, r);
      d.log.info(`guest ${name} (${formatMac(mac)}) joined` + (r.transport ? ` via ${r.transport}` : ''));
      d.control.emit('guest:up', { name, mac: formatMac(mac), transport: r.transport, pid: r.pid });
      // One close listener per connection, however many names it registers.
      let names = namesOf.get(conn);
      if (names === undefined) {
        const mine = new Map<string, Registration>();
        names = mine;
        namesOf.set(conn, mine);
        conn.socket.once('close', () => {
          for (const [n, reg] of mine) {
            if (registered.get(n) !== reg) continue; // Re-registered by a newer launcher.
            registered.delete(n);
            d.log.info(`guest ${n} left`);
            d.control.emit('guest:down', { name: n, mac: formatMac(reg.mac) });
          }
        });
      }
      names.set(name, r);
      return { name, mac: formatMac(mac) };
    },
  });

  d.control.register({ name: 'guests', usage: 'guests: named guests with MAC, port and IPv4 addresses', handler: () => rows() });
}
