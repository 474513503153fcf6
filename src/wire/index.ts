export * from './ethernet.js';
