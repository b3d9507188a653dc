import { setImmediate } from 'node:timers/promises';

/**
 * Lets I/O callbacks and other requests run before long CPU work goes on: awaited between chunks of
 * point arithmetic that would otherwise hold the event loop for tens of milliseconds.
 */
export function yieldToEventLoop(): Promise<void> {
  return setImmediate();
}
