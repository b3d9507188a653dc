import { join } from 'node:path';
import type { Deployment } from '../core/index.ts';
import { KeyBook } from '../core/keys/key-book.ts';
import { parseStoredKeyPolicy } from '../core/keys/policy.ts';
import { keyBookOptions, type KeyRegistryConfig } from '../config/key-registry.ts';
import { KeyChangeLog } from '../storage/key-change-log.ts';
import type { Logger } from '../runtime/logger.ts';

/**
 * The node's managed keys: `<stateDir>/key-changes.log`, replayed into a KeyBook at start, under the
 * committee's `keys` settings (config/key-registry.ts, the same declaration the gateway reads).
 * `materialIds` lists the key ids of the DKG material this node holds (results and shares): a create
 * or rotate that would take over such material is refused.
 */
export async function openNodeKeyRegistry(
  stateDir: string,
  deployment: Deployment,
  config: KeyRegistryConfig,
  materialIds: () => Iterable<string>,
  log: Logger,
): Promise<KeyChangeLog> {
  const book = new KeyBook({ ...keyBookOptions(config, deployment, parseStoredKeyPolicy), materialIds });
  const started = performance.now();
  const { registry, tornBytes } = await KeyChangeLog.open(join(stateDir, 'key-changes.log'), book);
  if (tornBytes > 0) log.warn({ tornBytes }, 'the key change log ended in a torn line (a crash mid-write); it was cut off');
  log.info({ keys: book.size, changes: book.changeCount, ms: Math.round(performance.now() - started) }, 'managed keys loaded');
  return registry;
}
