/**
 * Control commands beyond status: each module exports `register(daemon)` and is listed here, so
 * a new command is one file plus one line.
 */
import type { Daemon } from '../daemon.js';
import { register as capture } from './capture.js';
import { register as inject } from './inject.js';
import { register as doctor } from './doctor.js';
import { register as metrics } from './metrics.js';
import { register as guests } from './guests.js';

type Registrar = (d: Daemon) => void;

export const registrars: Registrar[] = [capture, inject, doctor, metrics, guests];
