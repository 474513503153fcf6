export * from './types.js';
export * from './locator.js';
export * from './load.js';
export * from './wg.js';
