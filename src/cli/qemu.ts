/**
 * `lanparty qemu NAME -- [QEMU ARGS...]`: runs QEMU with a NIC on the running lanparty.
 *
 * Stages: ask lanparty for its transports (control command `transports`, with the -netdev value
 * for NAME) → check that each -netdev is a form lanparty makes (checkTransports; QEMU would run
 * whatever a `bridge,helper=` says) → read `qemu-system-x86_64 --version` → choose the transport that suits that QEMU
 * (and say why on stderr) → name the guest (`guest:add`, held open while QEMU runs, so `status`
 * and the web view show the name) → spawn QEMU with `-netdev ... -device MODEL,netdev=lp0,mac=...`
 * added → forward SIGINT/SIGTERM/SIGHUP → exit with QEMU's exit code (128+N if a signal killed it).
 *
 * The choice (docs/qemu-transports.md §5, §8): a 7.2 stream client never reconnects, so on 7.2 a
 * datagram transport (unixgram, udp, mcast) is preferred: it survives a lanparty restart because
 * nothing is connected. From 8.0 a stream client reconnects (reconnect=, reconnect-ms= from 9.2),
 * and a stream is preferred for its backpressure and jumbo frames. Before 7.2 only `-netdev
 * socket` exists (mcast, or udp rewritten as socket,udp=).
 */
import { parseArgs } from 'node:util';
import { execFileSync, spawn } from 'node:child_process';
import * as net from 'node:net';
import { request, connectControl } from '../control/index.js';
import { LanpartyError } from '../util/index.js';
import { formatMac, macForName } from '../wire/index.js';
import { defaultControlPath } from './status.js';
import { shortUnixQueue, SUGGESTED_MAX_DGRAM_QLEN, unixQueueNow, netdevOptions } from '../daemon/index.js';
import { bufferLine, netCoreSysctl, openGuestUdpSocket, type GuestUdpSocket } from './guest-socket.js';

export const QEMU_HELP = `Usage: lanparty qemu NAME [options] -- [QEMU ARGS...]

Run QEMU with one NIC on the running lanparty: adds -netdev and -device with NAME's stable MAC
(lanparty mac NAME), picks the transport that suits the installed QEMU and says which on stderr,
and names the guest in lanparty status and the web view while it runs. Ctrl-C stops QEMU
cleanly; lanparty qemu exits with QEMU's exit code.

Options:
      --model MODEL[,OPTS]  NIC device (default virtio-net-pci), e.g. e1000, rtl8139,
                            or virtio-net-pci,romfile= (no iPXE ROM)
  -t, --transport WHICH     use this lanparty transport: a kind (mcast, udp, unixgram, tcp, unix)
                            or a URL as lanparty status shows it
      --qemu BIN            the QEMU binary (default $LANPARTY_QEMU or qemu-system-x86_64)
  -n, --dry-run             print the QEMU command line instead of running it (on a
                            udp port it shows QEMU's own socket; see below)
      --control PATH        control socket (default $XDG_RUNTIME_DIR/lanparty/control.sock)
  -h, --help                this help

On a udp port (QEMU 7.2 or later) lanparty qemu makes the guest's socket itself, with a
larger receive buffer than QEMU's own (up to net.core.rmem_max), and passes it to QEMU as
fd 3: a guest that falls behind a burst then loses fewer frames.

Exit codes: QEMU's own; 127 if QEMU cannot be started; otherwise as for every lanparty command
(2 usage, 8 no lanparty running, ...).

Example:
  lanparty qemu alice -- -m 1G -nographic -drive file=alice.qcow2,if=virtio
`;

export const NETDEV_ID = 'lp0';

export interface TransportInfo {
  url: string;
  kind: string;
  state: string;
  address: string;
  netdev: string | null;
}

/**
 * The -netdev forms lanparty's transports produce (the `transports` control command), key by key:
 * QEMU runs what its -netdev says (`bridge,helper=`, `tap,script=`, `fd=`...), so a reply from
 * whatever answers on the control socket is passed on only when it is one of these.
 */
const NETDEV_FORMS: Record<string, { type: string; keys: Record<string, RegExp | string> }> = {
  mcast: { type: 'socket', keys: { mcast: 'hostport', localaddr: 'host' } },
  udp: { type: 'dgram', keys: { 'local.type': /^inet$/, 'local.host': 'host', 'local.port': 'port', 'remote.type': /^inet$/, 'remote.host': 'host', 'remote.port': 'port' } },
  unixgram: { type: 'dgram', keys: { 'local.type': /^unix$/, 'local.path': 'path', 'remote.type': /^unix$/, 'remote.path': 'path' } },
  tcp: { type: 'stream', keys: { server: /^(on|off)$/, 'addr.type': /^inet$/, 'addr.host': 'host', 'addr.port': 'port' } },
  unix: { type: 'stream', keys: { server: /^(on|off)$/, 'addr.type': /^unix$/, 'addr.path': 'path' } },
};
const HOST = /^[A-Za-z0-9:][A-Za-z0-9.:-]{0,252}$/;
/** An absolute path that fits a unix socket address (108 bytes with its NUL), with no comma or control character. */
const PATH = /^\/[^,\x00-\x1f\x7f]{0,106}$/;

function valueOk(kind: string, v: string): boolean {
  switch (kind) {
    case 'host': return HOST.test(v);
    case 'port': return /^[0-9]{1,5}$/.test(v) && Number(v) >= 1 && Number(v) <= 65535;
    case 'hostport': { const i = v.lastIndexOf(':'); return i > 0 && valueOk('host', v.slice(0, i)) && valueOk('port', v.slice(i + 1)); }
    case 'path': return PATH.test(v) && Buffer.byteLength(v) <= 107;
    default: return false;
  }
}

/** Why `netdev` is not the form lanparty makes for a `kind` transport joined by `guest` as `id`, or null when it is. */
export function netdevProblem(kind: string, netdev: string, guest: string, id: string): string | null {
  const form = NETDEV_FORMS[kind];
  if (form === undefined) return `lanparty makes no -netdev for a ${JSON.stringify(kind)} transport`;
  const parts = netdev.split(',');
  if (parts[0] !== form.type) return `backend ${JSON.stringify(parts[0].slice(0, 32))} (a ${kind} transport is -netdev ${form.type})`;
  const seen = new Map<string, string>();
  for (const part of parts.slice(1)) {
    const eq = part.indexOf('=');
    const key = eq > 0 ? part.slice(0, eq) : part;
    if (eq <= 0) return `option ${JSON.stringify(part.slice(0, 32))} has no value`;
    if (seen.has(key)) return `option ${key} given twice`;
    seen.set(key, part.slice(eq + 1));
  }
  if (seen.get('id') !== id) return `id=${JSON.stringify((seen.get('id') ?? '').slice(0, 32))} (asked for ${id})`;
  for (const [key, value] of seen) {
    if (key === 'id') continue;
    const rule = form.keys[key];
    if (rule === undefined) return `option ${JSON.stringify(key.slice(0, 32))} (a ${kind} transport has only ${Object.keys(form.keys).join(', ')})`;
    if (typeof rule === 'string' ? !valueOk(rule, value) : !rule.test(value)) return `${key}=${JSON.stringify(value.slice(0, 64))} is not a valid value`;
  }
  for (const key of Object.keys(form.keys)) if (!seen.has(key)) return `option ${key} is missing`;
  if (kind === 'unixgram') {
    const remote = seen.get('remote.path')!;
    const own = `${remote.slice(0, remote.lastIndexOf('/') + 1)}guest-${guest}.sock`;
    if (seen.get('local.path') !== own) return `local.path is not ${own}, the guest's socket beside the port`;
  }
  return null;
}

/**
 * Checks the `transports` reply before anything of it reaches QEMU's command line: an array of
 * transports whose -netdev, when there is one, is a form lanparty makes (netdevProblem). Throws
 * LP_ERR_CONTROL naming the socket, the transport and what is wrong.
 */
export function checkTransports(reply: unknown, guest: string, id: string, control: string): TransportInfo[] {
  const bad = (what: string): never => {
    throw new LanpartyError('LP_ERR_CONTROL', `control socket ${control}: the transports reply ${what}; lanparty makes no such thing, so nothing of it goes to QEMU. ` +
      'Check that the lanparty there is yours (lanparty status --control PATH shows its pid; ls -l the socket and its directory)');
  };
  if (!Array.isArray(reply)) return bad('is not a list');
  const printable = /^[\x20-\x7e]{0,512}$/;
  return reply.map((t: unknown, i) => {
    const r = t as Partial<TransportInfo> | null;
    if (typeof r !== 'object' || r === null || typeof r.url !== 'string' || typeof r.kind !== 'string' || typeof r.state !== 'string' ||
      typeof r.address !== 'string' || !(r.netdev === null || typeof r.netdev === 'string') || !printable.test(r.url) || !printable.test(r.kind)) {
      return bad(`has an entry (#${i + 1}) that is not a transport`);
    }
    if (r.netdev !== null) {
      const problem = netdevProblem(r.kind, r.netdev, guest, id);
      if (problem !== null) bad(`gives ${r.url} the -netdev ${JSON.stringify(r.netdev.slice(0, 200))}: ${problem}`);
    }
    return { url: r.url, kind: r.kind, state: r.state, address: r.address, netdev: r.netdev } as TransportInfo;
  });
}

export interface QemuVersion {
  major: number;
  minor: number;
  micro: number;
  text: string;
}

/** Parses the first line of `qemu-system-x86_64 --version`. */
export function parseQemuVersion(out: string): QemuVersion | null {
  const m = /version (\d+)\.(\d+)(?:\.(\d+))?/.exec(out);
  if (!m) return null;
  return { major: Number(m[1]), minor: Number(m[2]), micro: Number(m[3] ?? 0), text: `${m[1]}.${m[2]}.${m[3] ?? 0}` };
}

function atLeast(v: QemuVersion, major: number, minor: number): boolean {
  return v.major > major || (v.major === major && v.minor >= minor);
}

export interface Choice {
  transport: TransportInfo;
  /** The -netdev value to pass (possibly adapted to the QEMU version). */
  netdev: string;
  reason: string;
}

const WHY: Record<string, string> = {
  unixgram: 'unix datagrams: nothing to reconnect, so the guest survives a lanparty restart; the socket directory is private to this user',
  udp: 'UDP datagrams: nothing to reconnect, so the guest survives a lanparty restart',
  mcast: 'the multicast group: nothing to reconnect, so the guest survives a lanparty restart (guests see their own broadcasts)',
  unix: 'a unix stream: backpressure and jumbo frames, and this QEMU reconnects after a lanparty restart',
  tcp: 'a TCP stream: backpressure and jumbo frames, and this QEMU reconnects after a lanparty restart',
};

/**
 * Picks the transport for a QEMU version (null: unknown, treated like 7.2). `wanted` is a kind or
 * a URL from the user. `shortQueue` is net.unix.max_dgram_qlen when it is short (shortUnixQueue),
 * else null: then udp goes before unixgram, which that queue holds to about half speed
 * (bench/RESULTS.md, section 4). Throws LP_ERR_USAGE naming what there is when nothing fits.
 */
export function chooseTransport(all: TransportInfo[], v: QemuVersion | null, wanted?: string, shortQueue: number | null = null): Choice {
  const version = v ?? { major: 7, minor: 2, micro: 0, text: 'unknown (assuming 7.2)' };
  const hasDgram = atLeast(version, 7, 2);
  const reconnect = atLeast(version, 9, 2) ? 'reconnect-ms=1000' : atLeast(version, 8, 0) ? 'reconnect=1' : null;
  const list = all.map((t) => `${t.url} (${t.kind})`).join(', ') || '(none)';
  // QEMU plays server on connect-out transports (server=on): each one belongs to one QEMU.
  const joinable = all.filter((t) => t.netdev !== null && t.state !== 'closed');

  const adapt = (t: TransportInfo): string | null => {
    const nd = t.netdev!;
    if (nd.startsWith('socket,')) return nd;
    if (!hasDgram) {
      if (t.kind !== 'udp') return null;
      // Before 7.2: the same UDP wire format through -netdev socket,udp=
      // (docs/qemu-transports.md §3).
      const f = netdevOptions(nd);
      return `socket,id=${f.get('id')},udp=${f.get('remote.host')}:${f.get('remote.port')},localaddr=${f.get('local.host')}:${f.get('local.port')}`;
    }
    if (nd.startsWith('stream,') && nd.includes('server=off') && reconnect !== null) return `${nd},${reconnect}`;
    return nd;
  };

  if (wanted !== undefined) {
    const t = joinable.find((x) => x.url === wanted) ?? joinable.find((x) => x.kind === wanted);
    if (!t) {
      const closedOrTap = all.find((x) => x.url === wanted || x.kind === wanted);
      throw new LanpartyError('LP_ERR_USAGE', closedOrTap
        ? `--transport ${wanted}: guests cannot join ${closedOrTap.url} directly (state ${closedOrTap.state}); lanparty has: ${list}`
        : `--transport ${wanted}: lanparty has no such transport; it has: ${list}`);
    }
    const nd = adapt(t);
    if (nd === null) throw new LanpartyError('LP_ERR_USAGE', `--transport ${wanted}: QEMU ${version.text} has no -netdev ${t.netdev!.split(',')[0]} (added in 7.2); use mcast or udp`);
    const stream = nd.startsWith('stream,') && nd.includes('server=off');
    const note = stream && reconnect === null ? `; QEMU ${version.text} cannot reconnect a stream, so this guest loses the LAN if lanparty restarts` : '';
    return { transport: t, netdev: nd, reason: `chosen with --transport${note}` };
  }

  const dgrams = shortQueue !== null ? ['udp', 'unixgram', 'mcast'] : ['unixgram', 'udp', 'mcast'];
  const order = !hasDgram ? ['mcast', 'udp']
    : reconnect !== null ? ['unix', 'tcp', ...dgrams]
      : dgrams;
  for (const kind of order) {
    const t = joinable.find((x) => x.kind === kind && !(x.netdev ?? '').includes('server=on'));
    if (!t) continue;
    const nd = adapt(t);
    if (nd === null) continue;
    const queue = kind === 'udp' && shortQueue !== null && joinable.some((x) => x.kind === 'unixgram')
      ? ` (before unixgram: unix datagram sockets queue only ${shortQueue} datagrams here, net.unix.max_dgram_qlen, which holds a guest to about half speed)`
      : '';
    const why = (WHY[kind] ?? kind) + queue;
    const ver = `QEMU ${version.text}`;
    const lead = hasDgram && reconnect === null ? `${ver} cannot reconnect a stream client, so a datagram transport: ` : `${ver}: `;
    return { transport: t, netdev: nd, reason: lead + why };
  }
  // On 7.2 with only stream listeners left: usable, with the caveat said out loud.
  const stream = joinable.find((x) => (x.kind === 'unix' || x.kind === 'tcp') && (x.netdev ?? '').includes('server=off'));
  if (stream && hasDgram) {
    return { transport: stream, netdev: stream.netdev!, reason: `QEMU ${version.text}: only a stream listener is available; this QEMU cannot reconnect it, so the guest loses the LAN if lanparty restarts` };
  }
  throw new LanpartyError('LP_ERR_USAGE', `no lanparty transport suits QEMU ${version.text}: lanparty has ${list}; start lanparty up with a udp:// or mcast:// port`);
}

/** What to say when the guest joins a unixgram port while the unix datagram queue is short (shortUnixQueue). */
export function queueNote(kind: string, qlen: number | null): string | null {
  if (kind !== 'unixgram' || qlen === null) return null;
  return `unix datagram sockets queue only ${qlen} datagrams here (net.unix.max_dgram_qlen), which holds this guest back ` +
    `(about half the speed of a udp port at MTU 1500); as root, sysctl -w net.unix.max_dgram_qlen=${SUGGESTED_MAX_DGRAM_QLEN}, ` +
    'then start lanparty and the guests again, or pass --transport udp';
}

/** The -netdev value for a socket passed as fd 3 (a connected one: QEMU takes no remote with it). */
export function fdNetdev(netdev: string): string {
  return `dgram,id=${netdevOptions(netdev).get('id') ?? NETDEV_ID},local.type=fd,local.str=3`;
}

/**
 * On a udp port with QEMU >= 7.2 (-netdev dgram), the guest's socket made here with a large receive
 * buffer (guest-socket.ts says why), or null: another transport, or the socket could not be made
 * (then QEMU makes its own, and a line says why).
 */
async function guestSocketFor(name: string, choice: Choice): Promise<GuestUdpSocket | null> {
  if (choice.transport.kind !== 'udp' || !choice.netdev.startsWith('dgram,')) return null;
  const f = netdevOptions(choice.netdev);
  if (f.get('local.type') !== 'inet' || f.get('remote.type') !== 'inet') return null;
  try {
    const sock = await openGuestUdpSocket(
      { host: f.get('local.host')!, port: Number(f.get('local.port')) },
      { host: f.get('remote.host')!, port: Number(f.get('remote.port')) });
    process.stderr.write(`lanparty qemu: ${bufferLine(name, sock.rcvbufBytes, netCoreSysctl('rmem_default'), netCoreSysctl('rmem_max'))}\n`);
    return sock;
  } catch (err) {
    const e = err as NodeJS.ErrnoException;
    const at = `${f.get('local.host')}:${f.get('local.port')}`;
    // QEMU could not bind it either: say whose address it is and what to do, not QEMU's error.
    if (e.code === 'EADDRINUSE') {
      throw new LanpartyError('LP_ERR_ADDR_IN_USE', `guest ${name}'s address on ${choice.transport.url}, udp ${at}, is taken by another program ` +
        `(ss -uapn 'sport = :${f.get('local.port')}' shows which; another QEMU for ${name}?); stop it, or start the guest under another name`);
    }
    process.stderr.write(`lanparty qemu: note: QEMU makes its own socket for ${name} on ${at} ` +
      `(lanparty could not: ${e.code ?? e.message}), with the kernel's default receive buffer (net.core.rmem_default)\n`);
    return null;
  }
}

/** The NIC device argument: MODEL[,OPTS],netdev=lp0,mac=MAC. */
export function nicDevice(model: string, mac: string): string {
  return `${model},netdev=${NETDEV_ID},mac=${mac}`;
}

/** The QEMU argv (without the binary): the user's arguments, then the name, netdev and NIC. */
export function qemuArgv(name: string, userArgs: string[], netdev: string, device: string): string[] {
  const named = userArgs.includes('-name');
  return [...userArgs, ...(named ? [] : ['-name', name]), '-netdev', netdev, '-device', device];
}

function shellQuote(a: string): string {
  return /^[A-Za-z0-9_./:=,@+-]+$/.test(a) ? a : `'${a.replace(/'/g, `'\\''`)}'`;
}

/** The exit code for a process that ended with `code` or by `signal`. */
export function exitCodeOf(code: number | null, signal: NodeJS.Signals | null): number {
  if (code !== null) return code;
  const n = signal ? (({ SIGHUP: 1, SIGINT: 2, SIGQUIT: 3, SIGKILL: 9, SIGSEGV: 11, SIGTERM: 15, SIGABRT: 6 } as Record<string, number>)[signal] ?? 0) : 0;
  return 128 + n;
}

/**
 * Keeps the guest's name registered while QEMU runs: a held control connection, re-registered
 * every RETRY_MS after lanparty restarts. Returns a stopper.
 */
function holdRegistration(control: string, args: Record<string, unknown>): () => void {
  const RETRY_MS = 2000;
  let sock: net.Socket | null = null;
  let stopped = false;
  let timer: NodeJS.Timeout | null = null;
  const again = () => {
    if (!stopped) timer = setTimeout(attempt, RETRY_MS);
  };
  const attempt = () => {
    timer = null;
    connectControl(control).then((s) => {
      if (stopped) return s.destroy();
      sock = s;
      s.on('error', () => {});
      s.on('close', again);
      s.write(JSON.stringify({ id: 1, cmd: 'guest:add', args }) + '\n');
    }, again);
  };
  attempt();
  return () => {
    stopped = true;
    if (timer) clearTimeout(timer);
    sock?.destroy();
  };
}

export async function qemu(argv: string[]): Promise<number> {
  const dash = argv.indexOf('--');
  const own = dash < 0 ? argv : argv.slice(0, dash);
  const userArgs = dash < 0 ? [] : argv.slice(dash + 1);
  const { values, positionals } = parseArgs({
    args: own,
    allowPositionals: true,
    options: {
      model: { type: 'string' },
      transport: { type: 'string', short: 't' },
      qemu: { type: 'string' },
      'dry-run': { type: 'boolean', short: 'n' },
      control: { type: 'string' },
      help: { type: 'boolean', short: 'h' },
    },
    strict: true,
  });
  if (values.help) {
    process.stdout.write(QEMU_HELP);
    return 0;
  }
  if (positionals.length !== 1) {
    throw new LanpartyError('LP_ERR_USAGE', positionals.length === 0
      ? 'lanparty qemu: expected a guest name, e.g. lanparty qemu alice -- -m 1G disk.qcow2'
      : `lanparty qemu: expected one guest name before --, got ${positionals.map((p) => JSON.stringify(p)).join(' ')}; QEMU's own arguments go after --`);
  }
  const name = positionals[0];
  if (!/^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$/.test(name)) throw new LanpartyError('LP_ERR_USAGE', `guest name "${name}": use 1-63 letters, digits, ".", "_" or "-", starting with a letter or digit`);
  const model = values.model ?? 'virtio-net-pci';
  if (!/^[A-Za-z0-9_.-]+(,[^\s]*)?$/.test(model) || /,(netdev|mac)=/.test(model)) {
    throw new LanpartyError('LP_ERR_USAGE', `--model "${model}": expected a NIC device name with optional options, e.g. e1000 or virtio-net-pci,romfile= (lanparty adds netdev= and mac=)`);
  }
  if (userArgs.some((a) => a === '-nic' || a === '-net')) {
    process.stderr.write(`lanparty qemu: note: your arguments add another NIC (${userArgs.includes('-nic') ? '-nic' : '-net'}); lanparty adds its own (${NETDEV_ID})\n`);
  }
  const bin = values.qemu ?? process.env.LANPARTY_QEMU ?? 'qemu-system-x86_64';
  const control = values.control ?? defaultControlPath();

  const transports = checkTransports(await request(control, 'transports', { guest: name, netdevId: NETDEV_ID }), name, NETDEV_ID, control);
  const running = (await request(control, 'guests')) as Array<{ name: string; state: string; pid: number | null }>;
  const clash = running.find((g) => g.name === name && g.state === 'running');
  if (clash && !values['dry-run']) {
    throw new LanpartyError('LP_ERR_PATH_EXISTS', `guest ${name} is already running on this lanparty (QEMU pid ${clash.pid ?? '?'}); stop it or pick another name`);
  }

  let version: QemuVersion | null = null;
  try {
    version = parseQemuVersion(execFileSync(bin, ['--version'], { encoding: 'utf8', timeout: 20_000, stdio: ['ignore', 'pipe', 'pipe'] }));
  } catch (err) {
    const e = err as NodeJS.ErrnoException;
    if (e.code === 'ENOENT' || e.code === 'EACCES') {
      process.stderr.write(`lanparty: ${bin}: cannot run it (${e.code}); install QEMU (apt-get install qemu-system-x86) or pass --qemu BIN\n`);
      return 127;
    }
  }
  if (version === null) process.stderr.write(`lanparty qemu: could not read ${bin} --version; assuming QEMU 7.2\n`);
  const shortQueue = shortUnixQueue(unixQueueNow());
  const choice = chooseTransport(transports, version, values.transport, shortQueue);
  const mac = formatMac(macForName(name));
  process.stderr.write(`lanparty qemu: ${name} (${mac}) joins via ${choice.transport.url}: ${choice.reason}\n`);
  const note = queueNote(choice.transport.kind, shortQueue);
  if (note) process.stderr.write(`lanparty qemu: note: ${note}\n`);

  if (values['dry-run']) {
    process.stdout.write([bin, ...qemuArgv(name, userArgs, choice.netdev, nicDevice(model, mac))].map(shellQuote).join(' ') + '\n');
    return 0;
  }

  const passed = await guestSocketFor(name, choice);
  const netdev = passed ? fdNetdev(choice.netdev) : choice.netdev;
  const args = qemuArgv(name, userArgs, netdev, nicDevice(model, mac));
  const child = spawn(bin, args, { stdio: passed ? ['inherit', 'inherit', 'inherit', passed.fd] : 'inherit' });
  const started = await new Promise<NodeJS.ErrnoException | null>((resolve) => {
    child.once('spawn', () => resolve(null));
    child.once('error', (err) => resolve(err));
  });
  // QEMU has its own copy of the descriptor (fd 3) by now, or never will.
  passed?.close();
  if (started !== null) {
    process.stderr.write(`lanparty: ${bin}: cannot start it (${started.code ?? started.message}); install QEMU or pass --qemu BIN\n`);
    return 127;
  }
  const release = holdRegistration(control, { name, mac, transport: choice.transport.url, pid: child.pid });
  const forward = (sig: NodeJS.Signals) => () => {
    if (child.exitCode === null && child.signalCode === null) child.kill(sig);
  };
  const handlers = (['SIGINT', 'SIGTERM', 'SIGHUP'] as const).map((sig) => [sig, forward(sig)] as const);
  for (const [sig, h] of handlers) process.on(sig, h);
  const code = await new Promise<number>((resolve) => child.once('exit', (c, s) => resolve(exitCodeOf(c, s))));
  for (const [sig, h] of handlers) process.off(sig, h);
  release();
  return code;
}
