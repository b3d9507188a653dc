import { DEFAULT_CLOCK_SKEW_SECONDS } from '../core/authz.ts';
import { field } from './config-schema.ts';

/** `clockSkewSeconds`, declared alike by the node and the gateway; each reads its own variable. */
export const clockSkewField = (env: string) =>
  field.integer(0, 600, DEFAULT_CLOCK_SKEW_SECONDS, { description: "tolerated difference between a requester's clock and ours, for signed validity windows", env, unit: 'seconds' });
