import { access } from 'node:fs/promises';
import type { Logger } from 'pino';

/** How often a held vote write looks for its file again. */
const POLL_MS = 20;

/**
 * Test fault `testFaults.holdVoteWhileExists` (accepted only with TKMS_ENABLE_TEST_FAULTS=1): a
 * reshare or refresh vote is written only once `path` is gone. The ceremony is then in its agreement
 * with no vote on disk for as long as the test wants, so a kill -9 lands in that window every time,
 * however fast the ceremony runs.
 */
export function holdVoteWhileExists(path: string, log: Logger): () => Promise<void> {
  const exists = () => access(path).then(() => true, () => false);
  return async () => {
    if (!(await exists())) return;
    log.warn({ path }, 'test fault: the vote write waits until this file is removed');
    while (await exists()) await new Promise((r) => setTimeout(r, POLL_MS));
  };
}
