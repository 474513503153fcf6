export * from './server.js';
export * from './lease-store.js';
