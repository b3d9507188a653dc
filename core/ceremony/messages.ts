import { concatBytes, encodeHex } from '../bytes.ts';
import { messageSha256 } from '../digest.ts';
import { verifyMemberSignature } from '../dkg/member-signatures.ts';
import { isTkmsError, TkmsError } from '../errors.ts';
import { LruCache } from '../lru.ts';
import { decodeCeremonyMessage, encodeUnsigned, signingBytes, withSignature, type CeremonyBody, type CeremonyFamily, type CeremonyShape, type DecodedCeremonyMessage, type PointCache } from './codec.ts';
import { Inbox, inboxBounds } from './inbox.ts';
import { SeenMessages } from './seen.ts';
import type { CeremonyIdentity } from './types.ts';

function badRequest(error: unknown): never {
  if (isTkmsError(error, 'bad_request')) throw error;
  if (isTkmsError(error)) throw new TkmsError('bad_request', error.message);
  throw error;
}

/** What the message layer needs of the ceremony: its wire family, binding and shape. */
export interface MessageContext {
  family: CeremonyFamily;
  ceremonyId: Uint8Array;
  shape: CeremonyShape;
}

/**
 * One ceremony's message layer: what arrives is decoded (bounded by the shape), authenticated,
 * admitted within the inbox's bounds and remembered to drop repeats; what this member sends is
 * signed and kept to be sent again (`own`) until every participant acknowledged it.
 */
export class CeremonyMessages {
  readonly seen = new SeenMessages();
  /** This member's own messages, re-sent by every retransmit. */
  readonly own: Uint8Array[] = [];
  private readonly inbox: Inbox;
  /** Bounded: decoding happens before authentication. */
  private readonly pointCache: PointCache = new LruCache(4096);
  /** Signatures that verified (a forged one is checked again if sent again, never stored), bounded. */
  private readonly signatureCache = new LruCache<string, true>(4096);

  constructor(
    private readonly context: MessageContext,
    private readonly identity: CeremonyIdentity,
  ) {
    this.inbox = new Inbox(inboxBounds(context.shape));
  }

  decode(payload: Uint8Array): DecodedCeremonyMessage {
    try {
      return decodeCeremonyMessage(payload, this.context.shape, this.pointCache);
    } catch (error) {
      badRequest(error);
    }
  }

  sign(body: CeremonyBody): Uint8Array {
    const unsigned = encodeUnsigned(body, this.context.family);
    return withSignature(unsigned, this.identity.sign(signingBytes(this.context.ceremonyId, unsigned, this.context.family)));
  }

  /** A vote's signature: over the kind's vote message alone, what a certificate's verifier checks (no ceremony framing). */
  signVote(voteMessage: Uint8Array): Uint8Array {
    return this.identity.sign(voteMessage);
  }

  /** Keeps a message this member signed: re-sent by retransmit, and a repeat of it is dropped. */
  keepOwn(raw: Uint8Array): Uint8Array {
    this.own.push(raw);
    this.seen.add(raw);
    return raw;
  }

  signOwn(body: CeremonyBody): Uint8Array {
    return this.keepOwn(this.sign(body));
  }

  /** Member signature check, once per (key, message, signature). */
  verified(publicKey: Uint8Array | undefined, message: Uint8Array, signature: Uint8Array): boolean {
    if (publicKey === undefined) return false;
    const key = encodeHex(messageSha256(concatBytes(publicKey, messageSha256(message), signature)));
    if (this.signatureCache.get(key) === true) return true;
    const ok = verifyMemberSignature(publicKey, message, signature);
    if (ok) this.signatureCache.set(key, true);
    return ok;
  }

  /** The author's key when `m` is signed by member `author` of `keys`; else bad_request. */
  authenticate(m: DecodedCeremonyMessage, keys: Map<number, Uint8Array>, author: number): Uint8Array {
    const publicKey = keys.get(author);
    if (publicKey === undefined) throw new TkmsError('bad_request', `ceremony ${m.body.kind}: author ${author} is not a member`);
    if (!this.verified(publicKey, signingBytes(this.context.ceremonyId, m.signed, this.context.family), m.signature)) {
      throw new TkmsError('bad_request', `ceremony ${m.body.kind}: bad signature of member ${author}`);
    }
    return publicKey;
  }

  /** Whether the inbox's bounds leave room for `m` from this author (it is dropped, not refused, when not). */
  admit(publicKey: Uint8Array, m: DecodedCeremonyMessage): boolean {
    return this.inbox.admit(encodeHex(publicKey), m.body.kind, m.raw.length);
  }
}
