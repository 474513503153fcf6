export * from './daemon.js';
export * from './transports.js';
