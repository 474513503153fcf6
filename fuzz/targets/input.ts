/**
 * Fuzz targets for what users and local programs hand lanparty: the TOML config file (any bytes
 * must end in a Config or a LanpartyError LP_ERR_CONFIG), the control protocol (any line sent to a
 * real ControlServer on a temp unix socket gets exactly one JSON error or result reply, never an
 * internal error, and the server keeps serving), and the replay window a peer's counters drive.
 */
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import { isMainThread } from 'node:worker_threads';
import type { FuzzTarget } from '../engine.js';
import type * as ConfigMod from '../../src/config/index.js';
import type * as DaemonMod from '../../src/daemon/index.js';
import type * as Logger from '../../src/util/logger.js';
import type * as Replay from '../../src/crypto/replay.js';

const CONFIG_SEEDS = [
  `[switch]\nmac_age_seconds = 60\nmac_table_size = 100\nmax_frame_bytes = 1518\n\n[[port]]\nurl = "udp://127.0.0.1:4000"\n\n[[port]]\nurl = "tcp://127.0.0.1:4001"\n\n[dhcp]\nlease_seconds = 600\nkey_by = "client-id"\n`,
  `[[port]]\nurl = "mcast://230.0.0.1:33000?localaddr=127.0.0.1&ttl=1"\n[[port]]\nurl = "unixgram:///tmp/lp/dgram.sock"\n[[port]]\nurl = "unix:///tmp/lp/stream.sock"\n[[port]]\nurl = "tcp+connect://127.0.0.1:5555"\n[[port]]\nurl = "udp://127.0.0.1:33001?remote=127.0.0.1:34000"\n`,
  `[lan]\nsubnet = "10.77.0.0/24"\nhost_address = "10.77.0.1"\n[dhcp]\npool_start = "10.77.0.10"\npool_end = "10.77.0.99"\nrouter = "10.77.0.1"\ndns = ["10.77.0.1"]\nmtu = 1500\nprobe_ms = 0\n[[dhcp.static]]\nmac = "52:54:00:12:34:56"\naddress = "10.77.0.50"\n[[dhcp.static]]\nname = "db"\naddress = "10.77.0.51"\n[dns]\nenabled = true\ndomain = "lan"\n`,
  `[control]\nsocket = "/tmp/lp/control.sock"\n[switch]\npeer_idle_seconds = 30\n[[port]]\nurl = "vxlan://239.1.1.1?vni=42&dev=lo"\n[[port]]\nurl = "tap://tap0"\nguests = ["a", "b"]\n`,
];

export const configTarget: FuzzTarget = {
  name: 'config',
  description: 'any config file: readConfigFile + buildConfig give a Config or LP_ERR_CONFIG, nothing else',
  allowedCodes: ['LP_ERR_CONFIG'],
  maxInputBytes: 2048,
  dictionary: [
    '[switch]\n', '[[port]]\n', '[dhcp]\n', '[dns]\n', '[lan]\n', '[control]\n', '[[dhcp.static]]\n', 'url = "', '"\n', ' = ', '= [', ']', '{', '}',
    'udp://', 'tcp://', 'unix://', 'unixgram://', 'mcast://', 'tcp+connect://', 'unix+connect://', 'tap://', 'vxlan://', '127.0.0.1', ':33001', '?', '&', '=',
    'mac_age_seconds', 'mac_table_size', 'max_frame_bytes', 'peer_idle_seconds', 'lease_seconds', 'key_by', 'pool_start', 'pool_end', 'subnet', 'host_address',
    'router', 'mtu', 'probe_ms', 'static', 'mac', 'address', 'name', 'domain', 'enabled', 'socket', 'guests', 'lease_file',
    '1e400', '-1', '0x10', '9007199254740993', 'inf', 'nan', 'true', '1979-05-27T07:32:00Z', "'''", '"""', '\\u0000', '\\', '#', '.', '"',
  ],
  seeds: () => CONFIG_SEEDS.map((s) => Buffer.from(s)),
  async setup(load) {
    const cfg = await load<typeof ConfigMod>('src/config/index.js');
    // /dev/shm when there is one: a write to /tmp costs ~1.4 ms on these machines, 100x the parse.
    const dir = fs.mkdtempSync(path.join(fs.existsSync('/dev/shm') ? '/dev/shm' : os.tmpdir(), 'lp-fuzz-config-'));
    const file = path.join(dir, 'lanparty.toml');
    let valid = 0;
    return {
      run(data) {
        fs.writeFileSync(file, data);
        const doc = cfg.readConfigFile(file);
        const c = cfg.buildConfig(doc, {}, file);
        assert.ok(Array.isArray(c.ports));
        valid++;
      },
      close() { fs.rmSync(dir, { recursive: true, force: true }); },
      stats: () => ({ validConfigs: valid }),
    };
  },
};

export const locatorTarget: FuzzTarget = {
  name: 'locator',
  description: 'any port locator string (-p URL): parseLocator gives a PortConfig or LP_ERR_CONFIG',
  allowedCodes: ['LP_ERR_CONFIG'],
  maxInputBytes: 256,
  dictionary: ['udp://', 'tcp://', 'unix://', 'unixgram://', 'mcast://', 'tcp+connect://', 'unix+connect://', 'tap://', 'vxlan://', '127.0.0.1', '[::1]', ':33001', ':0', ':65536', '?', '&', '=', 'remote=', 'localaddr=', 'ttl=', 'vni=', 'dev=', 'group=', 'mac=', '%', '%00', '/', '//'],
  seeds: () => ['udp://127.0.0.1:33001', 'udp://127.0.0.1:33001?remote=127.0.0.1:34000', 'mcast://230.0.0.1:33000?localaddr=127.0.0.1&ttl=1', 'unix:///tmp/x.sock', 'unixgram:///tmp/d.sock',
    'tcp+connect://127.0.0.1:5555', 'unix+connect:///tmp/s.sock', 'tap://tap0', 'tap://tap0?create=1', 'vxlan://10.0.0.2?vni=42', 'vxlan://239.1.1.1?vni=7&dev=lo'].map((s) => Buffer.from(s)),
  async setup(load) {
    const cfg = await load<typeof ConfigMod>('src/config/index.js');
    return {
      run(data) {
        const p = cfg.parseLocator(data.toString('utf8'), 'port[0].url');
        assert.equal(typeof p, 'object');
      },
    };
  },
};

const CONTROL_CODES = ['LP_ERR_CONTROL', 'LP_ERR_USAGE', 'LP_ERR_CONFIG', 'LP_ERR_NO_DEVICE', 'LP_ERR_WIRE', 'LP_ERR_PERMISSION'];

export const controlTarget: FuzzTarget = {
  name: 'control',
  description: 'any line to a real ControlServer (with the daemon\'s commands) on a temp unix socket: one JSON reply, a typed error code, never LP_ERR_INTERNAL; the server keeps serving',
  allowedCodes: [],
  async: true,
  maxInputBytes: 1024,
  dictionary: ['{"id":1,"cmd":"', '"}', '"args":{', '}', '"status"', '"help"', '"ping"', '"subscribe"', '"inject"', '"capture"', '"metrics"', '"guests"', '"guest:add"', '"transports"', '"doctor"',
    '"events":[', '"frame":"', '"port":', '"name":', '"mac":', '"pid":', '"hex"', '"filter":', '"count":', 'null', 'true', '[]', '{}', '-1', '1e309', '"__proto__"', '"constructor"', '\\u0000', '\\ud800', ','],
  seeds: () => [
    '{"id":1,"cmd":"help"}', '{"id":2,"cmd":"status"}', '{"id":3,"cmd":"ping"}', '{"id":4,"cmd":"subscribe","args":{"events":["port:up"]}}',
    '{"id":5,"cmd":"inject","args":{"port":1,"frame":"ffffffffffff525400123456080600010800060400015254001234560a4d000a0000000000000a4d0001"}}',
    '{"id":6,"cmd":"metrics"}', '{"id":7,"cmd":"guests"}', '{"id":8,"cmd":"guest:add","args":{"name":"g1","mac":"52:54:00:12:34:56","transport":"udp","pid":1}}',
    '{"id":9,"cmd":"transports"}', '{"id":10,"cmd":"capture","args":{"filter":"arp"}}', '{"id":11,"cmd":"nope"}', 'not json', '[]', 'null', '{"cmd":5}',
  ].map((s) => Buffer.from(s)),
  async setup(load) {
    const cfg = await load<typeof ConfigMod>('src/config/index.js');
    const dm = await load<typeof DaemonMod>('src/daemon/index.js');
    const log = await load<typeof Logger>('src/util/logger.js');
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'lp-fuzz-control-'));
    const socketPath = path.join(dir, 'control.sock');
    const config = cfg.buildConfig({}, { controlSocket: socketPath, dhcp: true, leaseFile: path.join(dir, 'leases.json') }, 'fuzz');
    const d = new dm.Daemon(config, log.silentLogger);
    if (!isMainThread) {
      // Worker threads may not set the umask; the server sets it around listen() so the socket is
      // born 0600. Here the directory is a private mkdtemp (0700), and the server chmods the socket
      // to 0600 after listen anyway, so a no-op umask changes nothing the fuzzer looks at.
      const real = process.umask.bind(process);
      (process as { umask: (m?: number) => number }).umask = (m?: number) => (m === undefined ? real() : 0o022);
    }
    await d.control.start();
    let sock: net.Socket | null = null;
    let buffered = '';
    let waiter: ((line: string) => void) | null = null;
    const lines: string[] = [];
    let reconnects = 0;
    let replies = 0;
    let okReplies = 0;
    const connect = async (): Promise<void> => {
      sock?.destroy();
      buffered = '';
      lines.length = 0;
      const s = net.connect({ path: socketPath });
      await new Promise<void>((res, rej) => { s.once('connect', res); s.once('error', rej); });
      s.setEncoding('utf8');
      s.on('error', () => {});
      s.on('data', (chunk: string) => {
        buffered += chunk;
        let nl: number;
        while ((nl = buffered.indexOf('\n')) >= 0) {
          const line = buffered.slice(0, nl);
          buffered = buffered.slice(nl + 1);
          if (line.startsWith('{"event"')) continue;
          if (waiter !== null) { const w = waiter; waiter = null; w(line); } else lines.push(line);
        }
      });
      sock = s;
    };
    const nextReply = (): Promise<string> => {
      if (lines.length > 0) return Promise.resolve(lines.shift()!);
      return new Promise((res, rej) => {
        const t = setTimeout(() => { waiter = null; rej(new Error('control server sent no reply within 5 s')); }, 5000);
        waiter = (l) => { clearTimeout(t); res(l); };
      });
    };
    await connect();
    return {
      async run(data) {
        const line = data.toString('utf8').replace(/\n/g, ' ');
        if (line.trim() === '') return;
        let cmd: unknown;
        try { cmd = (JSON.parse(line) as { cmd?: unknown }).cmd; } catch { cmd = undefined; }
        sock!.write(line + '\n');
        const reply = JSON.parse(await nextReply()) as { id: unknown; ok: unknown; error?: { code: string; message: string } };
        replies++;
        assert.equal(typeof reply.ok, 'boolean');
        if (reply.ok === false) {
          assert.ok(reply.error && CONTROL_CODES.includes(reply.error.code), `reply carries an unexpected error: ${JSON.stringify(reply.error)}`);
        } else {
          okReplies++;
        }
        // capture and guest:add keep the connection (a stream, a registration): start a fresh one.
        if (reply.ok === true && (cmd === 'capture' || cmd === 'guest:add' || cmd === 'subscribe')) { reconnects++; await connect(); }
      },
      async close() {
        sock?.destroy();
        await d.control.stop();
        fs.rmSync(dir, { recursive: true, force: true });
      },
      stats: () => ({ replies, okReplies, reconnects }),
    };
  },
};

export const replayTarget: FuzzTarget = {
  name: 'replay-window',
  description: 'ReplayWindow fed any counter sequence agrees with a Set-based model (each counter once, nothing older than the window)',
  allowedCodes: [],
  maxInputBytes: 512,
  seeds: () => [Buffer.from('0000000100000002000000030000000200002000', 'hex'), Buffer.from('00000000ffffffff00000001', 'hex')],
  async setup(load) {
    const r = await load<typeof Replay>('src/crypto/replay.js');
    let accepted = 0;
    return {
      run(data) {
        const w = new r.ReplayWindow();
        const seen = new Set<number>();
        let last = -1;
        const limit = 2 ** 40;
        for (let i = 0; i + 3 < data.length; i += 4) {
          // Mostly small steps around the last counter, sometimes a big jump.
          const v = data.readUInt32BE(i);
          const c = (v & 0x80000000) !== 0 ? v & 0x7fffffff : Math.max(0, last + ((v & 0xffff) - 0x8000));
          const expected = !seen.has(c) && (last < 0 || c > last || last - c <= r.REPLAY_WINDOW) && c < limit;
          const got = w.check(c, limit);
          assert.equal(got, expected, `counter ${c} after ${last}`);
          if (got) { seen.add(c); if (c > last) last = c; accepted++; }
        }
      },
      stats: () => ({ accepted }),
    };
  },
};

const LEASE_FILE_SEED = JSON.stringify({
  version: 1,
  leases: [
    { mac: '52:54:00:12:34:56', ip: '10.77.0.10', clientId: '01525400123456', hostname: 'guest1', state: 'bound', expiresAtMs: 1_700_000_360_000, boundAtMs: 1_700_000_000_000 },
    { mac: '52:54:00:12:34:57', ip: '10.77.0.11', clientId: null, hostname: null, state: 'released', expiresAtMs: 1_700_000_000_000, boundAtMs: 0 },
    { mac: '52:54:00:12:34:58', ip: '10.77.0.12', clientId: '01525400123456', hostname: 'guest1', state: 'declined', expiresAtMs: 1_700_000_360_000, boundAtMs: 0 },
  ],
}, null, 1);

type LeaseStoreMod = typeof import('../../src/services/dhcp/lease-store.js');

export const leaseFileTarget: FuzzTarget = {
  name: 'lease-file',
  description: 'any bytes as a real lease file: LeaseStore.load gives a store (or moves the file aside) and never throws; a loaded store, and a store of arbitrary leases (byte 0 odd), written and loaded again hold the same leases',
  allowedCodes: [],
  async: true,
  maxInputBytes: 65_536,
  dictionary: ['{"version": 1, "leases": [', ']}', '{', '}', ',', '"mac": "', '"ip": "', '"clientId": ', '"hostname": ', '"state": "', '"expiresAtMs": ', '"boundAtMs": ',
    'bound', 'released', 'declined', 'conflict', 'offered', '52:54:00:12:34:56', '10.77.0.10', 'null', '1e308', '-0', '"__proto__"', '\\u0000', '[', ']'],
  seeds: () => [Buffer.from(LEASE_FILE_SEED), Buffer.from('{"version": 1, "leases": []}'), Buffer.from([1, 2, 3, 4, 5, 6, 10, 77, 0, 10, 0, 5, 65, 66])],
  async setup(load) {
    const ls = await load<LeaseStoreMod>('src/services/dhcp/lease-store.js');
    const log = await load<typeof Logger>('src/util/logger.js');
    // /dev/shm when there is one: the writes fsync, and this measures the store, not the disk.
    const dir = fs.mkdtempSync(path.join(fs.existsSync('/dev/shm') ? '/dev/shm' : os.tmpdir(), 'lp-fuzz-leases-'));
    const file = path.join(dir, 'leases.json');
    const clock = { nowMs: () => 1_700_000_000_000 };
    const timers = { setTimeout: () => null, clearTimeout: () => {} };
    const keyFor = (mac: number, clientId: string | null): string => (clientId !== null && (mac & 1) === 0 ? 'id:' + clientId : 'mac:' + mac.toString(16));
    let loaded = 0;
    let movedAside = 0;
    /** The leases as comparable text, without key (a collision may make one a hold) or port. */
    const view = (s: InstanceType<LeaseStoreMod['LeaseStore']>): string[] =>
      [...s.all()].filter((l) => l.state !== 'offered').map((l) => JSON.stringify([l.mac, l.ip, l.clientId, l.hostname, l.state, l.expiresAtMs, l.boundAtMs])).sort();
    const fresh = (): InstanceType<LeaseStoreMod['LeaseStore']> => new ls.LeaseStore(file, log.silentLogger, clock, timers);
    return {
      async run(data) {
        for (const n of fs.readdirSync(dir)) fs.rmSync(path.join(dir, n));
        let store = fresh();
        if (data.length > 0 && (data[0] & 1) === 1) {
          // Arbitrary leases from the bytes: 14 bytes each (MAC, address, state, client id and hostname sizes).
          for (let o = 1; o + 14 <= data.length; o += 14) {
            const mac = data.readUIntBE(o, 6);
            const ip = data.readUInt32BE(o + 6);
            const state = (['bound', 'released', 'declined', 'conflict'] as const)[data[o + 10] & 3];
            const cid = data[o + 11] === 0 ? null : data.subarray(o, o + Math.min(data[o + 11], 14)).toString('hex');
            const hostname = data[o + 12] === 0 ? null : 'h'.repeat(1 + (data[o + 12] % 63));
            const key = state === 'declined' || state === 'conflict' ? `hold:${ip}` : keyFor(mac, cid);
            store.put({ key, mac, clientId: cid, ip, hostname, state, expiresAtMs: 1_700_000_000_000 + data[o + 13] * 1000, boundAtMs: data[o + 13], portId: 0 });
          }
        } else {
          fs.writeFileSync(file, data);
          store.load(keyFor);
          loaded++;
          if (!fs.existsSync(file)) { movedAside++; return; }
        }
        const before = view(store);
        store.changed();
        await store.flush();
        assert.equal(store.fileCounters.writeErrors, 0);
        store = fresh();
        store.load(keyFor);
        assert.deepEqual(view(store), before, 'leases written and loaded again are the same');
        assert.deepEqual(fs.readdirSync(dir), ['leases.json'], 'no temporary file left, nothing moved aside');
      },
      close() { fs.rmSync(dir, { recursive: true, force: true }); },
      stats: () => ({ loaded, movedAside }),
    };
  },
};
