/**
 * Control commands beyond status: each module exports `register(host)` and is listed here, so
 * a new command is one file plus one line.
 */
import { register as capture, type CaptureHost } from './capture.js';
import { register as inject, type InjectHost } from './inject.js';
import { register as doctor, type DoctorCommandHost } from './doctor.js';
import { register as metrics, type MetricsHost } from './metrics.js';
import { register as guests, type GuestsHost } from './guests.js';

/**
 * What the commands use of the daemon, each through its own narrow interface; the daemon passes
 * itself, so the commands do not import daemon.ts.
 */
export type CommandHost = CaptureHost & InjectHost & DoctorCommandHost & MetricsHost & GuestsHost;

type Registrar = (d: CommandHost) => void;

export const registrars: Registrar[] = [capture, inject, doctor, metrics, guests];

export { RecordReader, type StreamRecord, type PortInfo } from './capture.js';
export { metricsText, parseListen, startMetrics, type MetricsHost } from './metrics.js';
