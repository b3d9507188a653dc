import type { Committee } from '../net/committee.ts';
import type { Logger } from '../runtime/logger.ts';
import type { KeyChangeLog } from '../storage/key-change-log.ts';
import type { CeremonyIdentity } from '../core/ceremony/types.ts';
import type { DkgRunner } from './dkg-runner.ts';
import type { NodeEpochStore } from './epoch-types.ts';
import { KeyChangeService } from './key-changes.ts';
import { MAX_SUBMIT_SKEW_SECONDS } from '../core/keys/key-change.ts';
import { KeyDeletion } from './key-deletion.ts';
import { eraseKeyMaterial, listErasedKeyIds, readErasureRecord, type ErasureRecord } from './key-erasure.ts';
import { KeyMaterialScheduler, runnerKnows } from './key-material.ts';
import type { NodeMetrics } from './metrics.ts';
import type { ShareBook } from './partial.ts';
import { KEY_CHANGES_PROTOCOL } from '../core/keys/key-wire.ts';

/**
 * A node's managed-key services, built once: the signed changes (/tkms/key-changes/1), the DKGs
 * they call for, and the erasures and receipts of deleted keys. The daemon starts the protocol and
 * calls `start` once libp2p is up.
 */
export interface KeyServicesDeps {
  registry: KeyChangeLog;
  runner: DkgRunner;
  served(): { committee: Committee; selfId: number | undefined };
  sendToMember(memberId: number, protocol: string, frame: Uint8Array, timeoutMs: number): Promise<Uint8Array>;
  identity: CeremonyIdentity;
  committeeId: string;
  keystoreDir: string;
  stateDir: string;
  shares: ShareBook;
  epochs: NodeEpochStore;
  /** Test committees erase at the deletion date itself; others wait a cancel's freshness window. */
  allowShortDeletionWindow: boolean;
  log: Logger;
  metrics: NodeMetrics;
}

export interface KeyServices {
  changes: KeyChangeService;
  material: KeyMaterialScheduler;
  deletion: KeyDeletion;
  start(): Promise<void>;
  stop(): void;
}

export function createKeyServices(d: KeyServicesDeps): KeyServices {
  const material = new KeyMaterialScheduler({
    book: d.registry.book,
    selfId: () => d.served().selfId,
    members: () => d.served().committee.members.map((m) => m.id),
    hasMaterial: (keyId) => runnerKnows(d.runner, keyId),
    propose: (keyId) => void d.runner.propose(keyId),
    log: d.log,
  });
  const graceSeconds = d.allowShortDeletionWindow ? 0 : MAX_SUBMIT_SKEW_SECONDS;
  const erasureDeps = { keystoreDir: d.keystoreDir, stateDir: d.stateDir, shareBook: d.shares, epochStore: d.epochs, runner: d.runner };
  const deletion = new KeyDeletion({
    book: d.registry.book,
    committeeId: d.committeeId,
    selfId: () => d.served().selfId,
    erase: (materialId) => eraseKeyMaterial(materialId, erasureDeps),
    recorded: async () => {
      const records: ErasureRecord[] = [];
      for (const id of await listErasedKeyIds(d.stateDir)) {
        const record = await readErasureRecord(d.stateDir, id);
        if (record !== undefined) records.push(record);
      }
      return records;
    },
    identity: d.identity,
    graceSeconds,
    log: d.log,
  });
  const changes = new KeyChangeService({
    registry: d.registry,
    transport: {
      members: () => {
        const { committee, selfId } = d.served();
        return committee.members.map((m) => m.id).filter((id) => id !== selfId);
      },
      send: (memberId, frame, timeoutMs) => d.sendToMember(memberId, KEY_CHANGES_PROTOCOL, frame, timeoutMs),
    },
    log: d.log,
    metrics: d.metrics,
    onApplied: (key, change) => {
      material.onApplied(key, change);
      void deletion.tick();
    },
    receiptsOf: (keyId) => deletion.receiptsOf(keyId),
    destroyedGraceSeconds: graceSeconds,
  });
  return {
    changes,
    material,
    deletion,
    async start() {
      changes.start();
      material.start();
      await deletion.start();
    },
    stop() {
      changes.stop();
      material.stop();
      deletion.stop();
    },
  };
}
