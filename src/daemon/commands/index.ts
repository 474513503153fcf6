/**
 * Control commands beyond status: each module exports `register(daemon)` and is listed here, so
 * a new command is one file plus one line.
 */
import type { Daemon } from '../daemon.js';

type Registrar = (d: Daemon) => void;

export const registrars: Registrar[] = [];
