export * from './types.js';
export * from './locator.js';
export * from './load.js';
