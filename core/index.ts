// Node's fast paths or the browser's, by package.json condition: no setup call (core/platform/).
export { platformName, curveSelection } from '#platform';
export * from './errors.ts';
export * from './bytes.ts';
export * from './curve.ts';
export * from './curve-backend.ts';
export * from './lru.ts';
export * from './identifiers.ts';
export * from './ecies.ts';
export * from './shamir.ts';
export * from './dleq.ts';
export * from './rsa.ts';
export * from './handle.ts';
export * from './authz.ts';
export * from './node-wire.ts';
export * from './eip712.ts';
export * from './sealed-handle.ts';
export * from './typed-data.ts';
export * from './committee.ts';
