import { isTkmsError } from '../core/errors.ts';
import { destroyedByReceipts, destructionReceiptToJson, type DestructionReceipt } from '../core/keys/destruction-receipt.ts';
import { keyStateAt, keyVersionsAt, materialKeyId, versionStateAt, type ManagedKey } from '../core/keys/key-model.ts';
import { decodeKeyChangeReply, encodeKeyChangeRequest, KEY_CHANGES_PROTOCOL } from '../core/keys/key-wire.ts';
import { expectedCommittee, type Committee } from '../net/committee.ts';

/**
 * What the members say they erased of a deleted DKG key: each member's signed destruction receipts
 * (node/key-deletion.ts), checked here against the member keys of the committee, and per version
 * whether n − t + 1 members sent a valid one (then fewer than t shares remain, if they told the truth).
 * A receipt is a member's word, never the gateway's: whoever reads `receipts` checks them again.
 */
export interface VersionDestruction {
  version: number;
  materialKeyId: string;
  receipts: Record<string, unknown>[];
  confirmedBy: number[];
  needed: number;
  destroyed: boolean;
}

export type ReceiptSource = (memberId: number, protocol: string, frame: Uint8Array, timeoutMs: number) => Promise<Uint8Array>;

/** The destruction of each destroyed version of a DKG key; undefined when none is destroyed (or the key is derived). */
export async function keyDestruction(key: ManagedKey, nowSeconds: number, committee: Committee, ask: ReceiptSource, timeoutMs: number): Promise<VersionDestruction[] | undefined> {
  if (key.origin.type !== 'dkg') return undefined;
  const whole = keyStateAt(key, nowSeconds) === 'Destroyed';
  const destroyed = keyVersionsAt(key, nowSeconds).filter((v) => whole || versionStateAt(v, nowSeconds) === 'Destroyed');
  if (destroyed.length === 0) return undefined;
  const frame = encodeKeyChangeRequest({ type: 'receipts', keyId: key.keyId });
  const answers = await Promise.all(
    committee.members.map(async (m): Promise<DestructionReceipt[]> => {
      try {
        const reply = decodeKeyChangeReply(await ask(m.id, KEY_CHANGES_PROTOCOL, frame, timeoutMs));
        // A member's receipts name it: one that sends another's is not counted for it.
        return reply.ok && reply.type === 'receipts' ? reply.receipts.filter((r) => r.nodeId === m.id) : [];
      } catch (e) {
        if (!isTkmsError(e)) throw e;
        return [];
      }
    }),
  );
  const receipts = answers.flat();
  const expected = expectedCommittee(committee);
  const n = committee.members.length;
  return destroyed.map((v) => {
    const mine = receipts.filter((r) => r.version === v.version);
    const tally = destroyedByReceipts(mine, { n, t: committee.t, committeeId: committee.committeeId, memberPublicKeyOf: (id) => expected.memberKeys.get(id), keyId: key.keyId, version: v.version });
    return {
      version: v.version,
      materialKeyId: materialKeyId(key.keyId, v.version),
      receipts: mine.filter((r) => tally.valid.includes(r.nodeId)).map((r) => destructionReceiptToJson(r) as unknown as Record<string, unknown>),
      confirmedBy: tally.valid,
      needed: n - committee.t + 1,
      destroyed: tally.destroyed,
    };
  });
}
