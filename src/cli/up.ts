/**
 * `lanparty up`: start the switch with its ports, print the QEMU arguments for each transport,
 * then `ready`, and run until Ctrl-C (SIGINT) or SIGTERM, which stop it cleanly.
 */
import { parseArgs } from 'node:util';
import { DEFAULT_BUSY_POLL_BUDGET_PERCENT, DEFAULT_BUSY_POLL_US, loadConfig, parseLocator, type Config, type FlagOverrides } from '../config/index.js';
import { Daemon, nativeDataPath, startWebView, type WebView, parseListen, startMetrics, shortUnixQueue, SUGGESTED_MAX_DGRAM_QLEN, unixQueueNow } from '../daemon/index.js';
import { createLogger, LanpartyError } from '../util/index.js';
import { formatMac, macForName } from '../wire/index.js';

export const UP_HELP = `Usage: lanparty up [options]

Start the LAN: a learning Ethernet switch whose ports are QEMU's network transports.
With no options it listens on this host only (loopback, open to every user of the host, and a
socket directory), prints the QEMU arguments for each transport, then "ready".

Options:
  -c, --config FILE        TOML config file (see docs/config.md)
      --private            only unix socket ports, in a directory only you may enter (0700),
                           for a shared host: every user of the host can reach the default
                           udp, tcp and multicast ports on loopback, read the LAN's frames and
                           take a guest's MAC (config: private = true; no --port with it)
  -p, --port URL           a port locator; repeat for several (replaces the defaults):
                             mcast://GROUP:PORT?localaddr=IP&ttl=N[&stp=0]   (stp=0: keep the group
                               out of the peer links' spanning tree)
                             udp://HOST:PORT[?peer=HOST:PORT&accept=CIDR,...|any]   (accept: the
                               sources taken; beyond loopback accept= or peer= is needed)
                             unixgram:///PATH[?peer=/PATH]
                             tcp://HOST:PORT   unix:///PATH   (QEMU stream clients connect here)
                             tcp+connect://HOST:PORT   unix+connect:///PATH   (QEMU server=on)
                             tap://NAME[?create=1&address=IP/LEN&mtu=N]   (the host joins via a TAP)
                             vxlan://BIND[:PORT]?vni=N&remote=IP[:PORT]|group=IP   (RFC 7348)
      --tap NAME|URL       also join the host through TAP device NAME (tap://NAME), added to the
                           other ports; rootless: an administrator runs once
                           ip tuntap add mode tap user $USER name NAME
      --mac-age SECONDS    MAC ageing time (default 300)
      --mac-table-size N   most MAC entries (default 8192)
      --max-frame BYTES    largest frame accepted (default 65553: MTU 65535 + header + VLAN tag)
      --busy-poll US       after frames arrive, keep reading for US microseconds (0-1000) before
                           sleeping: a reply is then read without waking the process, for a
                           lower latency tail at light load, at some CPU (never above 10000
                           frames/s, where it would only take CPU from the guests); 0: off
                           (default ${DEFAULT_BUSY_POLL_US})
      --busy-poll-budget PERCENT  the most of one core that spinning without frames may use
                           on average (1-100, default ${DEFAULT_BUSY_POLL_BUDGET_PERCENT})
  -g, --guest NAME         print QEMU arguments for this guest name; repeat (default vm1)
      --no-dhcp            do not serve DHCP (bring your own server)
      --subnet CIDR        the LAN's subnet for the built-in DHCP/DNS host (default 10.77.0.0/24)
      --lease-file FILE    where DHCP leases persist
      --control PATH       control socket path
      --web [HOST:PORT]    serve a live view of the LAN on this host only (default 127.0.0.1:0,
                           a free port); the printed URL carries a random token
      --metrics HOST:PORT  serve Prometheus metrics at http://HOST:PORT/metrics (off by default)
  -h, --help               this help

Environment (for measuring and troubleshooting the data path; see docs/speed.md):
  LANPARTY_NO_NATIVE=1      use node:dgram instead of the native addon (slower; no unix datagrams)
  LANPARTY_UDP_GSO=0        send one UDP datagram per message (no UDP GSO)
  LANPARTY_ZERO_COPY=0      copy every forwarded datagram before sending it
  LANPARTY_NATIVE_AEAD=0    encrypt peer-link packets with node:crypto instead of the addon
  LANPARTY_STREAM_READER=0  let Node read tcp and unix stream connections instead of the addon
  LANPARTY_UNIX_FLOW_CONTROL=1
                            stop reading a unixgram port while one of its readers is slow: no
                            drops for a bulk flow, but every guest of that port waits
                            (docs/transports.md)
`;

/** The default for a bare `--web`: loopback, a free port. */
const WEB_DEFAULT = '127.0.0.1:0';

export async function up(argv: string[]): Promise<number> {
  const values = parseUpArgs(argv);
  if (values.help) {
    process.stdout.write(UP_HELP);
    return 0;
  }
  if (values.metrics !== undefined) parseListen(values.metrics);
  const config = loadConfig(upFlags(values));
  for (const [i, tap] of (values.tap ?? []).entries()) {
    config.ports.push(parseLocator(tap.includes('://') ? tap : `tap://${tap}`, `--tap #${i + 1}`));
  }
  const log = createLogger();
  const native = nativeDataPath();
  if (!native.available) {
    const busy = config.switch.busyPollUs > 0 ? ' and without busy polling (--busy-poll needs the addon)' : '';
    log.info(`native data path not available (${native.error}); using the slower JS path without unix datagram ports${busy}. Build it with: npm run build:native (needs g++ and make)`);
  }
  const daemon = new Daemon(config, log);
  await daemon.start();
  for (const s of daemon.skipped) log.info(`skipped default port ${s.url}: ${s.reason}`);
  let metrics: Awaited<ReturnType<typeof startMetrics>> | null = null;
  if (values.metrics !== undefined) {
    try {
      metrics = await startMetrics(daemon, values.metrics);
    } catch (err) {
      await daemon.stop();
      throw err;
    }
  }
  const out = joinLines(daemon, config);
  let web: WebView | null = null;
  if (values.web !== undefined) {
    try {
      web = await startWebView(daemon, values.web);
    } catch (err) {
      if (metrics !== null) await metrics.close();
      await daemon.stop();
      throw err;
    }
  }
  out.push('');
  if (metrics !== null) out.push(`Metrics (Prometheus text): ${metrics.address}`);
  if (web !== null) out.push(`Live view (this host only; the token in the URL is the key): ${web.url}`);
  out.push(...hintLines(daemon, config));
  out.push('ready');
  // The handlers go in before "ready" is printed: whoever reads it may signal at once, and a
  // SIGINT that came before them would kill the process unclean (sockets and files left behind).
  const stopped = new Promise<void>((resolve) => {
    const stop = (sig: string) => {
      log.info(`${sig}: stopping`);
      resolve();
    };
    process.once('SIGINT', () => stop('SIGINT'));
    process.once('SIGTERM', () => stop('SIGTERM'));
  });
  process.stdout.write(out.join('\n') + '\n');
  await stopped;
  if (metrics !== null) await metrics.close();
  await web?.close();
  await daemon.stop();
  return 0;
}

/** `up`'s command line. */
function parseUpArgs(argv: string[]) {
  // `--web` takes an optional value, which parseArgs cannot express: give a bare one the default.
  argv = argv.flatMap((a, i) => (a === '--web' && (i + 1 >= argv.length || argv[i + 1].startsWith('-')) ? [a, WEB_DEFAULT] : [a]));
  return parseArgs({
    args: argv,
    options: {
      config: { type: 'string', short: 'c' },
      port: { type: 'string', short: 'p', multiple: true },
      'mac-age': { type: 'string' },
      'mac-table-size': { type: 'string' },
      'max-frame': { type: 'string' },
      'busy-poll': { type: 'string' },
      'busy-poll-budget': { type: 'string' },
      guest: { type: 'string', short: 'g', multiple: true },
      'no-dhcp': { type: 'boolean' },
      subnet: { type: 'string' },
      'lease-file': { type: 'string' },
      control: { type: 'string' },
      tap: { type: 'string', multiple: true },
      metrics: { type: 'string' },
      web: { type: 'string' },
      private: { type: 'boolean' },
      help: { type: 'boolean', short: 'h' },
    },
    strict: true,
  }).values;
}

/** The flags that override the config file. */
function upFlags(values: ReturnType<typeof parseUpArgs>): FlagOverrides {
  return {
    config: values.config,
    ports: values.port,
    macAgeSeconds: values['mac-age'],
    macTableSize: values['mac-table-size'],
    maxFrameBytes: values['max-frame'],
    busyPollUs: values['busy-poll'],
    busyPollBudgetPercent: values['busy-poll-budget'],
    guests: values.guest,
    dhcp: values['no-dhcp'] ? false : undefined,
    subnet: values.subnet,
    leaseFile: values['lease-file'],
    controlSocket: values.control,
    private: values.private ? true : undefined,
  };
}

/** What `up` prints first: each transport with the QEMU options that join a guest to it, then the virtual host. */
function joinLines(daemon: Daemon, config: Config): string[] {
  const out: string[] = [];
  out.push(`lanparty is up with ${daemon.transports.length} transports (config: ${config.source}). Join guests with:`);
  for (const t of daemon.transports) {
    const st = t.status();
    out.push('');
    out.push(`  ${t.url}  [${st.address}]`);
    for (const g of config.guests) {
      const netdev = t.qemuNetdev(g, 'n0');
      if (netdev === null) break; // Not a guest attachment (tap, vxlan): guests join through other ports.
      const mac = formatMac(macForName(g));
      out.push(`    ${g}: -netdev ${netdev} -device virtio-net-pci,netdev=n0,mac=${mac}`);
    }
    if (t.kind === 'tap') {
      // A TAP transport's status address is "NAME CIDR..." (src/transports/tap).
      const [dev, ...cidrs] = st.address.split(' ');
      out.push(cidrs.length > 0
        ? `    the host is ${cidrs.map((c) => c.split('/')[0]).join(', ')} on this LAN via ${dev}`
        : `    the host joins this LAN via ${dev}, which has no IPv4 address yet (ip addr add ADDR/LEN dev ${dev})`);
    }
    // QEMU's own udp socket has the default receive buffer; the launcher makes a larger one (guest-socket.ts).
    if (t.kind === 'udp') out.push('    (lanparty qemu NAME -t udp -- ... gives a guest a larger receive buffer here: fewer frames lost)');
    if (t.kind === 'vxlan') out.push('    (VXLAN fabric: frames travel unencrypted over the underlay network; use it on trusted networks or over an encrypted link)');
    if (t.kind === 'tcp' || t.kind === 'unix') {
      const connect = st.state !== 'listening';
      out.push(connect ? '    (lanparty connects to this QEMU and reconnects when it restarts)' : '    (on QEMU 7.2 start the guest after lanparty; it cannot reconnect)');
    }
  }
  const lan = daemon.services?.status();
  if (lan) {
    out.push('');
    out.push(`Virtual host ${lan.hostAddress} on the LAN: ` + (lan.dhcp ? `DHCP hands out ${lan.dhcp.pool.start}-${lan.dhcp.pool.end}` : 'DHCP off') + (lan.dns ? `, DNS answers for *.${lan.dns.domain}` : '') + '.');
  }
  return out;
}

/** Hints after the join lines: jumbo frames, the unix datagram queue, and who can reach which port. */
function hintLines(daemon: Daemon, config: Config): string[] {
  const out: string[] = [];
  // Jumbo frames: guests on this host move far more data per frame (and per system call) with a
  // larger MTU; measured with bench/ (iperf3 between TCG guests, unixgram): MTU 9000 about 1.3x
  // the plain multicast group's MTU 1500 figure.
  const kinds = new Set(daemon.transports.map((t) => t.kind));
  const jumbo = ['unixgram', 'tcp', 'unix'].filter((k) => kinds.has(k as never));
  if (jumbo.length > 0) {
    out.push(`Faster between guests on this host: give them a larger MTU on the ${jumbo.join('/')} ports, e.g. in the guest`);
    out.push('  ip link set eth0 mtu 9000   (up to 65535 on unix ports; UDP and multicast ports carry at most 65507-byte frames)');
    out.push('  and match it on every guest of the LAN (or hand it out with [dhcp] mtu = 9000).');
  }
  out.push(...unixQueueHint(kinds.has('unixgram'), shortUnixQueue(unixQueueNow())));
  out.push(...exposureLines(config.privateDir, daemon.transports.map((t) => t.status())));
  return out;
}

export { LanpartyError };

/**
 * What the ports expose, said plainly: private mode names its directory; listening udp, tcp and
 * multicast ports on loopback are open to every user of this host (who can read the LAN's frames
 * and send with a guest's MAC); a port bound beyond loopback gets a line of its own saying who can
 * reach it from other hosts and what they get.
 */
export function exposureLines(privateDir: string | null, transports: Array<{ url: string; kind: string; state: string; address: string }>): string[] {
  if (privateDir !== null) return [`Private: only unix sockets, in ${privateDir} (mode 0700); other users of this host cannot reach them.`];
  const open = new Set<string>();
  const beyond: string[] = [];
  for (const t of transports) {
    const host = boundHost(t.kind, t.address);
    if (host === null) continue;
    if (host.startsWith('127.') || host === '::1') {
      if (t.kind === 'mcast' || ((t.kind === 'udp' || t.kind === 'tcp') && t.state === 'listening')) open.add(t.kind === 'mcast' ? 'multicast' : t.kind);
      continue;
    }
    beyond.push(`  ${t.url}: ${BEYOND_LOOPBACK[t.kind] ?? 'reachable from other hosts'}`);
  }
  const out: string[] = [];
  if (open.size > 0) out.push(`Every user of this host can reach the ${[...open].join(', ')} ports (read the LAN's frames, take a guest's MAC); on a shared host use lanparty up --private.`);
  if (beyond.length > 0) out.push('Reachable from other hosts:', ...beyond);
  else out.push('Nothing above is reachable from other hosts.');
  return out;
}

/** Who reaches a port bound beyond loopback, by transport kind. */
const BEYOND_LOOPBACK: Record<string, string> = {
  udp: 'the sources its accept= names (every source with accept=any) join the LAN and read its broadcasts',
  tcp: 'any host that can connect joins the LAN and reads its broadcasts; bind it to 127.0.0.1 and use ssh -L from elsewhere, or link hosts with [wg]',
  mcast: 'every host on that network segment (within its ttl) reads the LAN\'s frames and can join',
  vxlan: 'its VTEPs join the LAN; VXLAN is not encrypted, so the LAN\'s frames cross that network in clear (use [wg] across untrusted networks)',
  wg: 'encrypted; only the peers whose keys are configured get in',
  'tcp+connect': 'lanparty connects out to that address; whoever answers there joins the LAN',
};

/** The IP address a transport is bound to (multicast: its interface address), or null for paths and TAP. */
function boundHost(kind: string, address: string): string | null {
  if (kind === 'tap' || kind === 'unix' || kind === 'unixgram' || kind === 'unix+connect') return null;
  const m = kind === 'mcast' ? /\bon (\S+)/.exec(address) : /^\[?([0-9a-fA-F.:]+?)\]?:\d+/.exec(address) ?? /(\d+\.\d+\.\d+\.\d+)/.exec(address);
  return m ? m[1] : null;
}

/** Lines for `lanparty up` when it has a unixgram port and the unix datagram queue is short (shortUnixQueue), else none. */
export function unixQueueHint(hasUnixgram: boolean, qlen: number | null): string[] {
  if (!hasUnixgram || qlen === null) return [];
  return [
    `The unixgram ports run at a fraction of their speed here: the kernel queues ${qlen} datagrams per unix socket`,
    '(net.unix.max_dgram_qlen), and guests at MTU 1500 wait on it (bench/RESULTS.md, section 4). As root, once:',
    `  sysctl -w net.unix.max_dgram_qlen=${SUGGESTED_MAX_DGRAM_QLEN}   (per network namespace; keep it in /etc/sysctl.d/;`,
    '  it applies to sockets made after it, so start lanparty and the guests again)',
  ];
}
