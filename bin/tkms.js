#!/usr/bin/env node
// Runs the TypeScript CLI through tsx; polyfills load before anything imports libp2p.
import { register } from 'tsx/esm/api';

register();
await import('../core/polyfills.ts');
await import('../scripts/tkms.ts');
