export * from './errors.js';
export * from './logger.js';
export * from './private-dir.js';
export * from './unix-path.js';
