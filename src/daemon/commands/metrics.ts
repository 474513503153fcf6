/**
 * Prometheus text exposition (format 0.0.4) of per-port counters and drops, switch and MAC table
 * totals. Off by default: `lanparty up --metrics 127.0.0.1:9477` starts the HTTP listener
 * (`startMetrics`); the `metrics` control command returns the same text without any listener.
 */
import * as http from 'node:http';
import type { ControlServer } from '../../control/index.js';
import { type Switch, DROP_REASONS } from '../../switch/index.js';
import type { Transport } from '../../transports/index.js';
import { type Logger, LanpartyError, socketSetupError, RateLimitedLog } from '../../util/index.js';
import type { WebCounters } from '../web/index.js';
import { busyPollState } from '../../io/index.js';

/** Scrapers connected at once; more are closed at accept (a scraper retries at its next interval). */
const MAX_METRICS_CONNECTIONS = 16;

/** What the metrics text and listener read of the daemon. */
export interface MetricsHost {
  readonly control: Pick<ControlServer, 'register' | 'connectionCount' | 'counters'>;
  readonly sw: Pick<Switch, 'ports' | 'counters' | 'table'>;
  readonly transports: readonly Transport[];
  readonly log: Logger;
  readonly webCounters: WebCounters | null;
}

export function register(d: MetricsHost): void {
  d.control.register({ name: 'metrics', usage: 'metrics: Prometheus text of per-port counters', handler: () => ({ text: metricsText(d) }) });
}

function label(v: string): string {
  return v.replace(/\\/g, '\\\\').replace(/\n/g, '\\n').replace(/"/g, '\\"');
}

export function metricsText(d: MetricsHost): string {
  const out: string[] = [];
  const portLabels = (p: { id: number; name: string; kind: string }) => `port="${p.id}",name="${label(p.name)}",kind="${p.kind}"`;
  const counter = (name: string, help: string, rows: Array<[string, number]>) => {
    out.push(`# HELP ${name} ${help}`, `# TYPE ${name} counter`);
    for (const [l, v] of rows) out.push(l ? `${name}{${l}} ${v}` : `${name} ${v}`);
  };
  const ports = d.sw.ports;
  counter('lanparty_port_rx_frames_total', 'Frames received on the port.', ports.map((p) => [portLabels(p), p.counters.rxFrames]));
  counter('lanparty_port_rx_bytes_total', 'Bytes received on the port.', ports.map((p) => [portLabels(p), p.counters.rxBytes]));
  counter('lanparty_port_tx_frames_total', 'Frames sent out of the port.', ports.map((p) => [portLabels(p), p.counters.txFrames]));
  counter('lanparty_port_tx_bytes_total', 'Bytes sent out of the port.', ports.map((p) => [portLabels(p), p.counters.txBytes]));
  counter('lanparty_port_drops_total', 'Frames dropped on the port, by reason.', ports.flatMap((p) => DROP_REASONS.map((r) => [`${portLabels(p)},reason="${r}"`, p.counters.drops[r]] as [string, number])));
  const flowing = ports.filter((p) => p.flow !== undefined).map((p) => [p, p.flow!()] as const);
  counter('lanparty_port_flow_pauses_total', 'Stream ports: times the port stopped reading because a stream port it sent to was congested (flow control).', flowing.map(([p, f]) => [portLabels(p), f.pauses]));
  counter('lanparty_port_flow_pause_timeouts_total', 'Stream ports: waits for a congested port that ran out (that port was stuck).', flowing.map(([p, f]) => [portLabels(p), f.pauseTimeouts]));
  const unixgram = d.transports.map((x) => x.status()).filter((x) => x.kind === 'unixgram' && x.socket);
  counter('lanparty_transport_flow_pauses_total', 'Unix datagram transports: times a reader\'s deep backlog stopped the transport\'s socket reading (flow control).', unixgram.map((x) => [`transport="${label(x.url)}"`, x.socket!.flowPauses]));
  counter('lanparty_transport_flow_pause_timeouts_total', 'Unix datagram transports: readers that held the socket 200 ms without draining (stuck).', unixgram.map((x) => [`transport="${label(x.url)}"`, x.socket!.flowTimeouts]));
  const dgrams = d.transports.map((x) => x.status()).filter((x) => x.socket);
  out.push('# HELP lanparty_transport_peers Datagram transports: source addresses (peer ids) their socket remembers now.', '# TYPE lanparty_transport_peers gauge');
  for (const x of dgrams) out.push(`lanparty_transport_peers{transport="${label(x.url)}"} ${x.socket!.peers}`);
  counter('lanparty_transport_peer_events_total', 'Datagram transports: sources refused at the port\'s peer bound, peers evicted to make room (port or socket table), peers aged out.',
    dgrams.flatMap((x) => [[`transport="${label(x.url)}",event="refused"`, x.peers?.refused ?? 0], [`transport="${label(x.url)}",event="evicted"`, x.peers?.evicted ?? x.socket!.peersEvicted],
      [`transport="${label(x.url)}",event="aged"`, x.peers?.aged ?? 0]] as Array<[string, number]>));
  const udp = d.transports.map((x) => x.status()).filter((x) => x.kind === 'udp' && x.socket);
  counter('lanparty_transport_not_accepted_total', 'UDP transports: datagrams from sources outside the accept list, dropped.', udp.map((x) => [`transport="${label(x.url)}"`, x.socket!.notAccepted]));
  const listeners = d.transports.map((x) => x.status()).filter((x) => x.refusedConnections !== undefined);
  counter('lanparty_transport_refused_connections_total', 'Stream listeners: connections closed at accept because the listener had its most (1024).', listeners.map((x) => [`transport="${label(x.url)}"`, x.refusedConnections!]));
  const sc = d.sw.counters;
  counter('lanparty_switch_frames_total', 'Forwarding decisions, by kind.', [['kind="flood"', sc.floods], ['kind="unicast"', sc.unicasts], ['kind="runt"', sc.runts], ['kind="oversize"', sc.oversize], ['kind="self-loop"', sc.selfLoops], ['kind="port-error"', sc.portErrors]]);
  const t = d.sw.table;
  out.push('# HELP lanparty_mac_table_entries MACs in the table.', '# TYPE lanparty_mac_table_entries gauge', `lanparty_mac_table_entries ${t.size}`);
  counter('lanparty_mac_table_events_total', 'MAC table events.', [['event="learned"', t.counters.learned], ['event="moved"', t.counters.moved], ['event="expired"', t.counters.expired], ['event="evicted"', t.counters.evicted]]);
  out.push('# HELP lanparty_ports Switch ports now.', '# TYPE lanparty_ports gauge', `lanparty_ports ${ports.length}`);
  const cc = d.control.counters;
  out.push('# HELP lanparty_control_connections Control socket connections open now.', '# TYPE lanparty_control_connections gauge', `lanparty_control_connections ${d.control.connectionCount}`);
  counter('lanparty_control_refused_total', 'Control socket: requests and connections refused or closed, by reason (handler-error is a bug).', [
    ['reason="bad-request"', cc.badRequests], ['reason="overlong-request"', cc.overlongRequests], ['reason="handler-error"', cc.handlerErrors],
    ['reason="idle"', cc.idleClosed], ['reason="connection-limit"', cc.refusedConnections],
  ]);
  if (d.webCounters !== null) {
    const w = d.webCounters;
    counter('lanparty_web_refused_total', 'Web view: requests and connections refused or failed, by reason (bad-request: 400; handler-error: 500, a bug; connection-limit: closed at accept).',
      [['reason="bad-request"', w.badRequests], ['reason="handler-error"', w.handlerErrors], ['reason="connection-limit"', w.refusedConnections], ['reason="evicted-without-token"', w.evictedConnections]]);
  }
  const bp = busyPollState();
  if (bp) {
    counter('lanparty_busy_poll_frames_total', 'Frames read while busy polling, each without a wake-up.', [['', bp.frames]]);
    counter('lanparty_busy_poll_idle_seconds_total', 'CPU time busy polling spent without frames.', [['', bp.idleUs / 1e6]]);
    counter('lanparty_busy_poll_skipped_total', 'Wakeups that slept at once because the busy-poll budget was spent.', [['', bp.skipped]]);
    counter('lanparty_busy_poll_loaded_total', 'Wakeups that did not busy poll under a load (frames faster than its light-load bound, or a batch).', [['', bp.loaded]]);
  }
  return out.join('\n') + '\n';
}

/** Parses HOST:PORT; the error names the flag. */
export function parseListen(text: string): { host: string; port: number } {
  const m = /^(\[[^\]]+\]|[^:]+):(\d{1,5})$/.exec(text.trim());
  if (!m || Number(m[2]) > 65535) throw new LanpartyError('LP_ERR_USAGE', `--metrics "${text}": expected HOST:PORT, e.g. 127.0.0.1:9477`);
  return { host: m[1].replace(/^\[|\]$/g, ''), port: Number(m[2]) };
}

/** Starts the HTTP endpoint (GET /metrics). Resolves once listening; returns a closer. */
export async function startMetrics(d: MetricsHost, listen: string): Promise<{ close(): Promise<void>; address: string }> {
  const { host, port } = parseListen(listen);
  // A scrape that throws costs that scrape: a 500 and a log line (at most one per 10 s or so).
  const errorLog = new RateLimitedLog((m) => d.log.error(m));
  const server = http.createServer((req, res) => {
    try {
      if (req.method !== 'GET' || (req.url !== '/metrics' && req.url !== '/')) {
        res.writeHead(404, { 'content-type': 'text/plain' }).end('lanparty: only GET /metrics is served\n');
        return;
      }
      const text = metricsText(d);
      res.writeHead(200, { 'content-type': 'text/plain; version=0.0.4; charset=utf-8' }).end(text);
    } catch (err) {
      errorLog.write(Date.now(), `metrics: a request failed (${(err as Error).message}); answered 500`);
      if (res.headersSent) res.destroy();
      else res.writeHead(500, { 'content-type': 'text/plain', connection: 'close' }).end('lanparty: internal error; see lanparty\'s log\n');
    }
  });
  server.maxConnections = MAX_METRICS_CONNECTIONS;
  server.headersTimeout = 10_000;
  await new Promise<void>((resolve, reject) => {
    server.once('error', (err: NodeJS.ErrnoException) => reject(socketSetupError(`--metrics ${listen}`, err)));
    server.listen(port, host, resolve);
  });
  return { address: `http://${listen}/metrics`, close: () => new Promise<void>((r) => server.close(() => r())) };
}
