import { TkmsError } from '../core/index.ts';
import type { KeyBook } from '../core/keys/key-book.ts';
import { signDestructionReceipt, type DestructionReceipt } from '../core/keys/destruction-receipt.ts';
import { keyStateAt, keyVersionsAt, materialKeyId, parseMaterialKeyId, versionStateAt, type ManagedKey } from '../core/keys/key-model.ts';
import type { Logger } from '../runtime/logger.ts';
import { errorText } from '../core/errors.ts';
import { erasureDigest, type ErasureRecord } from './key-erasure.ts';

/**
 * When a DKG key (or one version of it) reaches its deletion date, this node erases its share of
 * that version's material (node/key-erasure.ts) and signs a destruction receipt with its member
 * identity. Erasure waits `graceSeconds` past the date: a cancel signed before the date may reach
 * this node up to MAX_SUBMIT_SKEW_SECONDS later, and a share erased is never back. From the date
 * itself every partial is refused (key_destroyed), so the grace costs nothing but disk.
 *
 * Derived keys have no material of their own: their deletion is the refusal alone.
 */
export interface KeyDeletionOptions {
  book: Pick<KeyBook, 'all' | 'byMaterial'>;
  committeeId: string;
  selfId(): number | undefined;
  erase(materialId: string): Promise<ErasureRecord>;
  /** Erasures recorded before this start: their receipts are signed again (Ed25519 signs the same bytes the same way). */
  recorded(): Promise<ErasureRecord[]>;
  identity: { sign(message: Uint8Array): Uint8Array };
  graceSeconds: number;
  log: Logger;
  nowSeconds?: () => number;
  intervalMs?: number;
}

const CHECK_INTERVAL_MS = 5_000;

export class KeyDeletion {
  private readonly receipts = new Map<string, DestructionReceipt>();
  private readonly now: () => number;
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<void> | undefined;

  constructor(private readonly o: KeyDeletionOptions) {
    this.now = o.nowSeconds ?? (() => Math.floor(Date.now() / 1000));
  }

  async start(): Promise<void> {
    for (const record of await this.o.recorded()) this.noteErased(record);
    await this.tick();
    this.timer = setInterval(() => void this.tick(), this.o.intervalMs ?? CHECK_INTERVAL_MS);
    this.timer.unref();
  }

  stop(): void {
    if (this.timer !== undefined) clearInterval(this.timer);
  }

  /**
   * Whether a material key id names a version of a managed DKG key that is destroyed now (its
   * deletion date passed, erased or about to be): a reshare or refresh does not carry it to the
   * next committee. Every member decides from the same signed dates.
   */
  isDestroyed(materialId: string): boolean {
    // With the grace, as erasure: a cancel may still be on its way, and the key must not be left behind meanwhile.
    const at = this.now() - this.o.graceSeconds;
    const managed = this.o.book.byMaterial(materialId);
    if (managed === undefined || managed.key.origin.type !== 'dkg') return false;
    if (keyStateAt(managed.key, at) === 'Destroyed') return true;
    const v = managed.key.versions.find((x) => x.version === managed.version);
    return v !== undefined && versionStateAt(v, at) === 'Destroyed';
  }

  /** The receipts this node signed for the key's versions. */
  receiptsOf(keyId: string): DestructionReceipt[] {
    return [...this.receipts.values()].filter((r) => r.keyId === keyId).sort((a, b) => a.version - b.version);
  }

  /** Erases every DKG version whose deletion date (plus the grace) has passed and that is not erased yet. */
  tick(): Promise<void> {
    this.running ??= this.eraseDue().finally(() => (this.running = undefined));
    return this.running;
  }

  private async eraseDue(): Promise<void> {
    const at = this.now() - this.o.graceSeconds;
    for (const key of this.o.book.all()) {
      if (key.origin.type !== 'dkg') continue;
      for (const materialId of dueMaterial(key, at)) {
        if (this.receipts.has(materialId)) continue;
        try {
          const record = await this.o.erase(materialId);
          this.noteErased(record);
          this.o.log.info({ keyId: key.keyId, materialId, files: record.files.length }, 'erased this node\'s share of a deleted key and signed its destruction receipt');
        } catch (e) {
          this.o.log.error({ keyId: key.keyId, materialId, err: errorText(e) }, 'could not erase the share of a deleted key; retrying');
        }
      }
    }
  }

  private noteErased(record: ErasureRecord): void {
    const nodeId = this.o.selfId();
    const { keyId, version } = parseMaterialKeyId(record.keyId);
    if (nodeId === undefined) throw new TkmsError('internal', 'a node outside the committee served has no member id to sign a destruction receipt with');
    const receipt = signDestructionReceipt(
      { keyId, version, materialKeyId: record.keyId, committeeId: this.o.committeeId, nodeId, erasedAt: record.erasedAt, erasedDigest: erasureDigest(record) },
      this.o.identity,
    );
    this.receipts.set(record.keyId, receipt);
  }
}

/** The material ids of the key's versions destroyed at `at` (every version when the key itself is). */
function dueMaterial(key: ManagedKey, at: number): string[] {
  const whole = keyStateAt(key, at) === 'Destroyed';
  return keyVersionsAt(key, at)
    .filter((v) => whole || versionStateAt(v, at) === 'Destroyed')
    .map((v) => materialKeyId(key.keyId, v.version));
}
