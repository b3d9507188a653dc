import { join } from 'node:path';
import type { Deployment } from '../core/index.ts';
import { KeyBook, type KeyCreationPolicy } from '../core/keys/key-book.ts';
import { KeyChangeLog } from '../storage/key-change-log.ts';
import type { Logger } from '../runtime/logger.ts';

/** What a committee decides about managed keys (the same on every member and the gateway). */
export interface KeyRegistrySettings {
  creation: KeyCreationPolicy;
  maxKeys: number;
  maxChangesPerKey: number;
  allowShortDeletionWindow: boolean;
}

/** The node's managed keys: `<stateDir>/key-changes.log`, replayed into a KeyBook at start. */
export async function openNodeKeyRegistry(
  stateDir: string,
  deployment: Deployment,
  settings: KeyRegistrySettings,
  parsePolicy: (policy: Record<string, unknown>) => Record<string, unknown>,
  log: Logger,
): Promise<KeyChangeLog> {
  const book = new KeyBook({ deployment, parsePolicy, ...settings });
  const started = performance.now();
  const { registry, tornBytes } = await KeyChangeLog.open(join(stateDir, 'key-changes.log'), book);
  if (tornBytes > 0) log.warn({ tornBytes }, 'the key change log ended in a torn line (a crash mid-write); it was cut off');
  log.info({ keys: book.size, changes: book.changeCount, ms: Math.round(performance.now() - started) }, 'managed keys loaded');
  return registry;
}

/** Until the committee's key settings are configurable (config/key-registry.ts): anyone may create, within a quota. */
export const DEFAULT_KEY_REGISTRY_SETTINGS: KeyRegistrySettings = {
  creation: { creators: 'open', perCreatorQuota: 1_000 },
  maxKeys: 100_000,
  maxChangesPerKey: 10_000,
  allowShortDeletionWindow: false,
};

export function keyRegistrySettings(_config: unknown): KeyRegistrySettings {
  return DEFAULT_KEY_REGISTRY_SETTINGS;
}

