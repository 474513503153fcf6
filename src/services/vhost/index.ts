export * from './vhost.js';
