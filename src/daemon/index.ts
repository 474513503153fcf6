export * from './daemon.js';
export * from './transports.js';
export * from './status.js';
export * from './commands/index.js';
export * from './doctor/index.js';
export * from './web/index.js';
