#!/usr/bin/env node
// Runs the TypeScript CLI through tsx (scripts/tkms.ts loads the polyfills before anything else).
import { register } from 'tsx/esm/api';

register();
await import('../scripts/tkms.ts');
