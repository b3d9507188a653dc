import { committeeFileDigest, expectedCommittee, type Committee } from '../core/committee.ts';
import { decodeHex, encodeHex, TkmsError } from '../core/index.ts';
import { parseDkgPublicResult, verifyDkgPublicResult } from '../core/dkg/index.ts';
import { handoverKeyJson, parseHandoverCertificate, type KeyEpochData } from '../core/ceremony/handover.ts';
import { parseCommittee } from '../net/committee.ts';

/**
 * The keys' public data at `from.epoch` for a member joining a committee: it holds none of them,
 * so it asks the members of `from` (the keys protocol) and takes what `from.t` of them answer
 * alike. Fewer than t members of `from` cannot make it deal with wrong verification shares; the
 * certificate it finally signs is checked against `from` in any case.
 */

/** One member's keys reply → its key data at from.epoch, or undefined when it serves another epoch or answers nonsense. */
export function keyDataFromReply(reply: { keys: unknown[]; epoch?: number; handovers?: unknown[] }, from: Committee): Map<string, KeyEpochData> | undefined {
  try {
    if ((reply.epoch ?? 0) !== from.epoch) return undefined;
    const out = new Map<string, KeyEpochData>();
    const handovers = reply.handovers ?? [];
    if (from.epoch === 0) {
      const expected = expectedCommittee(from);
      for (const raw of reply.keys) {
        const r = verifyDkgPublicResult(parseDkgPublicResult(raw), expected);
        out.set(r.keyId, {
          keyId: r.keyId,
          epoch: 0,
          t: r.t,
          groupPublicKey: decodeHex(r.groupPublicKey),
          verificationShares: new Map(Object.entries(r.verificationShares).map(([id, y]) => [Number(id), decodeHex(y)])),
          ...(r.curve === undefined ? {} : { curve: r.curve }),
        });
      }
      return out;
    }
    const last = handovers.length === 0 ? undefined : parseHandoverCertificate(handovers[handovers.length - 1]);
    if (last === undefined || last.fromEpoch + 1 !== from.epoch) return undefined;
    const to = parseCommittee(last.to);
    if (encodeHex(committeeFileDigest(to)) !== encodeHex(committeeFileDigest(from))) return undefined;
    for (const k of last.keys) {
      out.set(k.keyId, {
        keyId: k.keyId,
        epoch: from.epoch,
        t: from.t,
        groupPublicKey: decodeHex(k.groupPublicKey),
        verificationShares: new Map(Object.entries(k.verificationShares).map(([id, y]) => [Number(id), decodeHex(y)])),
        ...(k.curve === undefined ? {} : { curve: k.curve }),
      });
    }
    return out;
  } catch {
    return undefined;
  }
}

/** The key data `t` answers agree on for every key id (in keyIds order), or throws unavailable. */
export function agreedKeyData(answers: readonly (Map<string, KeyEpochData> | undefined)[], keyIds: readonly string[], t: number): KeyEpochData[] {
  return keyIds.map((keyId) => {
    const votes = new Map<string, { data: KeyEpochData; count: number }>();
    for (const answer of answers) {
      const data = answer?.get(keyId);
      if (data === undefined) continue;
      const fingerprint = JSON.stringify(handoverKeyJson(data));
      const entry = votes.get(fingerprint) ?? { data, count: 0 };
      entry.count++;
      votes.set(fingerprint, entry);
    }
    const agreed = [...votes.values()].find((v) => v.count >= t);
    if (agreed === undefined) throw new TkmsError('unavailable', `fewer than t = ${t} members of the committee leaving agree on the public data of key ${keyId}; retry once they are reachable`);
    return agreed.data;
  });
}
