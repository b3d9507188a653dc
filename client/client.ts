import { sha256 } from '@noble/hashes/sha2.js';
import {
  assertKeyId,
  assertPointBytes,
  decodeAddress,
  decodeBase64,
  decodeHandle,
  decodeHex,
  decodePoint,
  decryptWithSharedSecretX,
  DelegationMessage,
  deriveHandle,
  encodeBase64,
  encodeHex,
  EncryptRequestMessage,
  equalBytes,
  generateRsaKeyPair,
  GrantMessage,
  isTkmsError,
  newRequestId,
  parsePartialAnswer,
  RegisterHandleMessage,
  RevocationMessage,
  sealToHandle,
  TkmsError,
  type Delegation,
  type Deployment,
  type Eip712Struct,
  type EncryptRequest,
  type Grant,
  type RegisterHandle,
  type Revocation,
  type Point,
  type RsaKeyPair,
} from '../core/index.ts';
import { subtle } from '../core/webcrypto.ts';
import { parseDkgPublicResult, verifyDkgPublicResult, type DkgPublicResult } from '../core/dkg/index.ts';
import type { Account } from './account.ts';
import { GatewayHttp } from './gateway-http.ts';
import { recoverFromEpochs, type RejectedPartial } from './partials.ts';
import { followKey, pinnedMembership, type EpochShares, type KeyEpochs } from './epochs.ts';
import { followHandovers, MAX_HANDOVER_CHAIN, verifyArrival, type KeyEpochData } from '../core/ceremony/handover.ts';
import { MAX_EPOCH, type CommitteeMembership } from '../core/committee.ts';
import { requestSigner, type Eip712Signer, type RequestSigner } from './signer.ts';

/** Pages of GET /v1/committee one getKey reads at most (16 certificates a page: MAX_HANDOVER_CHAIN in all). */
const MAX_COMMITTEE_PAGES = 64;

/**
 * The tkms client: signs requests with an Ethereum-style account, talks to a gateway, and
 * decrypts locally. It trusts nothing it can check: the key's DKG result (member
 * signatures, polynomial consistency), the handle commitment of what the gateway returns,
 * and every partial's DLEQ proof. WebCrypto only on the decrypt path, so it runs in browsers.
 */
export interface TkmsClientOptions {
  /** The gateway's base URL; may carry a path (`https://app.example/tkms/`): routes resolve under it. */
  gatewayUrl: string;
  /**
   * Who signs the requests: a local account (secret key in this process) or any EIP-712 signer
   * (a wallet through `fromEip1193`, an ethers Signer through `fromEthers`, a viem account).
   */
  account: Account | Eip712Signer;
  /** Reused for every decrypt; generated (RSA-2048, non-extractable) on first use when absent. */
  rsaKey?: RsaKeyPair;
  /** Length of signed validity windows (default 300 s; at most 3600). */
  validitySeconds?: number;
  /**
   * Ed25519 member keys (id → 0x hex) to pin. Without them the client checks a key's DKG
   * signatures against the member keys the gateway publishes, which a lying gateway controls.
   */
  trustedMemberKeys?: Record<number, string>;
  /**
   * The pinned committee's threshold t (the committee file's). A key's DKG result must have this
   * t: member keys alone do not pin a key, since one member could sign a result with t = 1.
   * Local encryption needs all three of trustedMemberKeys, trustedThreshold and committeeId
   * (`pinnedClientOptions(parseCommitteeJson(text))`, exported by tkms/client, gives them).
   */
  trustedThreshold?: number;
  /**
   * The pinned committee's id (the committee file's): every signature is made for it, and a key
   * of another committee is refused. Without it the client signs for the committee named by the
   * key's DKG result as the gateway serves it, which a lying gateway controls like the member keys.
   */
  committeeId?: string;
  /**
   * The epoch of the pinned committee (the committee file's `epoch`; default 0). The client follows
   * the handover certificates the gateway passes on (GET /v1/committee) from this committee, checking
   * each one itself, so a client pinned once keeps working across reshares and refreshes.
   */
  trustedEpoch?: number;
  fetch?: typeof fetch;
  timeoutMs?: number;
  /** Allow plain http:// to a non-loopback gateway (refused with `insecure_transport` otherwise). */
  insecure?: boolean;
  /** Largest gateway answer read (default 8 MiB); a longer one fails with `response_too_large`. */
  maxResponseBytes?: number;
  /**
   * How long a node whose partial failed verification is left out of later decrypts by this
   * client (default 300 000 ms; 0 turns it off). It is still asked when too few others remain.
   */
  suspectMs?: number;
}

/** Partials a node sent that failed verification, by reason, since this client was made. */
export interface NodeMisbehaviour {
  nodeId: number;
  code: string;
  count: number;
  /** Epoch ms until which later decrypts leave this node out (0 when they no longer do). */
  avoidedUntil: number;
}

export interface VerifiedKey {
  keyId: string;
  publicKey: Point;
  publicKeyHex: string;
  t: number;
  n: number;
  committeeId: string;
  /** Y_i by node id at `epoch`, compressed and validated. */
  verificationShares: Map<number, Uint8Array>;
  /** The committee epoch the key is served at: its DKG result's, or the latest a verified handover certificate carried it to. `t`, `n` and `verificationShares` are at this epoch. */
  epoch: number;
  /** The key's t and Y_i at every epoch known (earlier ones too: a member that has not moved on answers at its epoch). */
  epochs: Map<number, EpochShares>;
  result: DkgPublicResult;
  /** True when the DKG result was checked against the pinned committee (member keys, t, committee id), not the gateway's word. */
  pinned: boolean;
}

export interface HandleInfo {
  handle: string;
  keyId: string;
  K: string;
  nonce: string;
  ciphertextHash: string;
  owner: string;
  kProof: string;
  created: boolean;
}

export interface DecryptResult {
  plaintext: Uint8Array;
  /** Node ids whose partials were combined. */
  usedNodeIds: number[];
  /** Nodes whose partials failed verification, with why. */
  rejected: RejectedPartial[];
  /** Nodes the gateway reported as failing or refusing. */
  failures: { nodeId: number; code: string; message: string }[];
  /** Delegation round trips made (a retry excludes nodes that sent bad partials). */
  attempts: number;
}

export interface RevokeResult {
  acknowledgedBy: number[];
  needed: number;
  effective: boolean;
}

const MAX_ATTEMPTS = 3;
/** How long a decrypt waits before asking again when the committee is mid-handover (committeeInFlux). */
const COMMITTEE_SETTLE_MS = 500;

/**
 * The gateway found fewer than t partials, some members answered, and the rest refused only as not
 * serving the key at its epoch yet (unknown_key) or any more (stale_epoch): what a committee
 * mid-handover answers, not a fault; another attempt a moment later succeeds.
 */
function committeeInFlux(e: unknown): boolean {
  if (!isTkmsError(e) || !['insufficient_partials', 'unknown_key', 'stale_epoch'].includes(e.code)) return false;
  const failures = e.details?.failures;
  const answered = e.details?.answered;
  // Some members answered: the key exists (a key nobody knows is refused by all, answered 0).
  return typeof answered === 'number' && answered > 0 && Array.isArray(failures) && failures.length > 0 && failures.every((f) => ['unknown_key', 'stale_epoch'].includes((f as { code?: unknown } | null)?.code as string));
}
const DEFAULT_SUSPECT_MS = 5 * 60_000;

export class TkmsClient {
  readonly http: GatewayHttp;
  private rsaKey: Promise<RsaKeyPair> | undefined;
  private readonly keys = new Map<string, VerifiedKey>();
  private readonly handleKeys = new Map<string, string>();
  private readonly validitySeconds: number;
  private readonly suspectMs: number;
  /** Node id → epoch ms until which decrypts leave it out (it sent a partial that failed verification). */
  private readonly suspects = new Map<number, number>();
  private readonly rejectedCounts = new Map<number, Map<string, number>>();
  private readonly signer: RequestSigner;

  constructor(private readonly opts: TkmsClientOptions) {
    // Fails here, in words, on a page that is not a secure context, not at the first decrypt.
    subtle();
    this.signer = requestSigner(opts.account);
    this.http = new GatewayHttp({
      baseUrl: opts.gatewayUrl,
      ...(opts.fetch ? { fetch: opts.fetch } : {}),
      ...(opts.timeoutMs ? { timeoutMs: opts.timeoutMs } : {}),
      ...(opts.insecure ? { insecure: true } : {}),
      ...(opts.maxResponseBytes ? { maxResponseBytes: opts.maxResponseBytes } : {}),
    });
    this.validitySeconds = opts.validitySeconds ?? 300;
    if (!Number.isInteger(this.validitySeconds) || this.validitySeconds < 1 || this.validitySeconds > 3600) {
      throw new TkmsError('bad_request', 'validitySeconds must be an integer in 1..3600');
    }
    if (opts.trustedThreshold !== undefined && (!Number.isSafeInteger(opts.trustedThreshold) || opts.trustedThreshold < 1)) {
      throw new TkmsError('bad_request', 'trustedThreshold must be a positive integer');
    }
    if (opts.trustedEpoch !== undefined && (!Number.isSafeInteger(opts.trustedEpoch) || opts.trustedEpoch < 0 || opts.trustedEpoch > MAX_EPOCH)) {
      throw new TkmsError('bad_request', `trustedEpoch must be an integer in 0..${MAX_EPOCH}`);
    }
    if (opts.rsaKey) this.rsaKey = Promise.resolve(opts.rsaKey);
    this.suspectMs = opts.suspectMs ?? DEFAULT_SUSPECT_MS;
    if (!Number.isSafeInteger(this.suspectMs) || this.suspectMs < 0) throw new TkmsError('bad_request', 'suspectMs must be a non-negative integer');
  }

  /**
   * Every node whose partials failed verification for this client, with counts by reason: what an
   * application exports as a metric (only a requester can see a lying node: the partials are
   * wrapped to its key). Answers are not signed by the nodes, so a dishonest gateway can also
   * make a node look bad here; it cannot make a bad partial pass. Sorted by node id, then reason.
   */
  misbehaviour(): NodeMisbehaviour[] {
    const now = Date.now();
    const out: NodeMisbehaviour[] = [];
    for (const [nodeId, byCode] of this.rejectedCounts) {
      const until = this.suspects.get(nodeId) ?? 0;
      for (const [code, count] of byCode) out.push({ nodeId, code, count, avoidedUntil: until > now ? until : 0 });
    }
    return out.sort((a, b) => a.nodeId - b.nodeId || a.code.localeCompare(b.code));
  }

  private noteRejected(key: VerifiedKey, rejected: readonly RejectedPartial[]): void {
    const until = Date.now() + this.suspectMs;
    for (const r of rejected) {
      // A member at an epoch this client cannot check is not lying.
      if (r.code === 'stale_epoch') continue;
      // Only committee members can be suspects; an id the gateway made up must not crowd them out.
      if (!key.verificationShares.has(r.nodeId)) continue;
      const byCode = this.rejectedCounts.get(r.nodeId) ?? new Map<string, number>();
      byCode.set(r.code, (byCode.get(r.code) ?? 0) + 1);
      this.rejectedCounts.set(r.nodeId, byCode);
      if (this.suspectMs > 0) this.suspects.set(r.nodeId, until);
    }
  }

  /** Nodes to leave out of a first request: the caller's, plus recent liars while t others remain. */
  private initialExclude(key: VerifiedKey, avoid: readonly number[]): Set<number> {
    const exclude = new Set<number>(avoid);
    const now = Date.now();
    const withSuspects = new Set(exclude);
    for (const [nodeId, until] of this.suspects) {
      if (until <= now) this.suspects.delete(nodeId);
      else withSuspects.add(nodeId);
    }
    return key.n - withSuspects.size >= key.t ? withSuspects : exclude;
  }

  private get trustedEpoch(): number {
    return this.opts.trustedEpoch ?? 0;
  }

  get address(): string {
    return this.signer.address;
  }

  private window(): { notBefore: number; notAfter: number } {
    const now = Math.floor(Date.now() / 1000);
    return { notBefore: now, notAfter: now + this.validitySeconds };
  }

  /** The unsigned message with its signature by this client's signer. */
  private async sign<T extends { signature: Uint8Array }>(struct: Eip712Struct, unsigned: Omit<T, 'signature'>, deployment: Deployment): Promise<T> {
    return { ...unsigned, signature: await this.signer.sign(struct, unsigned, deployment) } as T;
  }

  /**
   * The handover certificates the gateway passes on, from the one arriving at the pinned epoch (a key
   * made earlier is taken from it) to the epoch served, a page at a time (at most
   * MAX_COMMITTEE_PAGES pages, MAX_HANDOVER_CHAIN certificates); none from a gateway that predates
   * epochs. A gateway that predates pages answers every certificate at once, without `next`.
   */
  private async handovers(): Promise<unknown[]> {
    const out: unknown[] = [];
    let since = Math.max(0, this.trustedEpoch - 1);
    try {
      for (let page = 0; page < MAX_COMMITTEE_PAGES; page++) {
        const { json } = await this.http.request<Record<string, unknown>>('GET', `/v1/committee?since=${since}`);
        if (!Array.isArray(json.handovers)) throw new TkmsError('bad_request', 'gateway committee answer has no handovers');
        if (out.length + json.handovers.length > MAX_HANDOVER_CHAIN) throw new TkmsError('bad_request', `gateway passed on more than ${MAX_HANDOVER_CHAIN} handover certificates`);
        out.push(...json.handovers);
        const next = json.next;
        if (next === undefined || next === null) return out;
        // Each page must move on, or a gateway could keep the client asking.
        if (typeof next !== 'number' || !Number.isSafeInteger(next) || next <= since || next > MAX_EPOCH) throw new TkmsError('bad_request', 'gateway committee answer has an invalid next page');
        since = next;
      }
    } catch (e) {
      if (isTkmsError(e, 'not_found')) return [];
      throw e;
    }
    throw new TkmsError('bad_request', `gateway committee answer needs more than ${MAX_COMMITTEE_PAGES} pages`);
  }

  /**
   * The key's public data, verified: a vote quorum (core/quorum.ts) of member signatures over the whole DKG result (checked against
   * the committee of the epoch it was made at, reached from the pinned one through verified
   * certificates), consistent verification shares, and its Y_i at every later epoch from the handover
   * certificates, never from the gateway's word alone.
   */
  async getKey(keyId: string): Promise<VerifiedKey> {
    assertKeyId(keyId);
    const cached = this.keys.get(keyId);
    if (cached !== undefined) return cached;
    const key = await this.loadKey(keyId);
    this.keys.set(keyId, key);
    return key;
  }

  private async loadKey(keyId: string): Promise<VerifiedKey> {
    const [{ json }, certificates] = await Promise.all([this.http.request<Record<string, unknown>>('GET', `/v1/keys/${encodeURIComponent(keyId)}`), this.handovers()]);
    const result = parseDkgPublicResult({
      keyId: json.keyId,
      committeeId: json.committeeId,
      ...(json.resultEpoch === undefined ? {} : { epoch: json.resultEpoch }),
      sessionId: json.sessionId,
      t: json.t,
      n: json.n,
      groupPublicKey: json.publicKey,
      verificationShares: json.verificationShares,
      qualified: json.qualified,
      transcriptHash: json.transcriptHash,
      signatures: json.signatures,
    });
    if (result.keyId !== keyId) throw new TkmsError('bad_request', `gateway answered with key ${result.keyId} for ${keyId}`);
    if (this.opts.committeeId !== undefined && result.committeeId !== this.opts.committeeId) {
      throw new TkmsError('bad_proof', `key ${keyId} is of committee ${result.committeeId}, not of the pinned committee ${this.opts.committeeId}`);
    }
    const made = result.epoch ?? 0;
    const pinned = this.opts.trustedMemberKeys !== undefined && this.opts.trustedThreshold !== undefined && this.opts.committeeId !== undefined;
    if (pinned && made < this.trustedEpoch) return this.keyMadeBeforePin(result, certificates);
    let start: CommitteeMembership;
    try {
      start = pinned ? this.pinnedCommitteeAt(made, certificates) : this.gatewayCommittee(json, result);
    } catch (e) {
      throw new TkmsError('bad_proof', `key ${keyId}: ${isTkmsError(e) ? e.message : 'invalid'}`);
    }
    let verified: DkgPublicResult;
    try {
      // Unpinned parts come from the result itself: checked for consistency, trusted for nothing (pinned stays false).
      verified = verifyDkgPublicResult(result, { committeeId: start.committeeId, t: start.t, memberKeys: new Map(start.members.map((m) => [m.id, m.publicKey])) });
    } catch (e) {
      throw new TkmsError('bad_proof', `key ${keyId}: its DKG result does not verify: ${isTkmsError(e) ? e.message : 'invalid'}`);
    }
    const madeData: KeyEpochData = {
      keyId,
      epoch: made,
      t: result.t,
      groupPublicKey: decodePointBytes(result.groupPublicKey, 'public key'),
      verificationShares: new Map(Object.entries(result.verificationShares).map(([id, y]) => [Number(id), decodePointBytes(y, `Y_${id}`)])),
    };
    let epochs: KeyEpochs;
    try {
      epochs = followKey(start, madeData, certificates);
    } catch (e) {
      throw new TkmsError('bad_proof', `key ${keyId}: the committee's handover certificates do not verify: ${isTkmsError(e) ? e.message : 'invalid'}`);
    }
    return this.verifiedKey(verified, epochs, pinned);
  }

  /**
   * A key made before the pinned epoch: its DKG result was signed by a committee this client does not
   * know, so the key comes from the certificate that arrived at the pinned committee (signed by a vote
   * quorum of it, verifyArrival), which must name the result's group key; later epochs as usual.
   * The result's own signatures are not checked (`result` is the gateway's copy).
   */
  private keyMadeBeforePin(result: DkgPublicResult, certificates: readonly unknown[]): VerifiedKey {
    const pin = pinnedMembership(this.opts.trustedMemberKeys!, this.opts.trustedThreshold!, this.opts.committeeId!, this.trustedEpoch);
    const groupKey = decodePointBytes(result.groupPublicKey, 'public key');
    let arrived: KeyEpochData | undefined;
    let firstError: unknown;
    for (const cert of certificates) {
      if ((cert as { fromEpoch?: unknown } | null)?.fromEpoch !== pin.epoch - 1) continue;
      try {
        arrived = verifyArrival(cert, pin).find((k) => k.keyId === result.keyId);
        if (arrived !== undefined) break;
      } catch (e) {
        firstError ??= e;
      }
    }
    if (arrived === undefined || !equalBytes(arrived.groupPublicKey, groupKey)) {
      const why = arrived !== undefined ? 'names another group key' : isTkmsError(firstError) ? firstError.message : 'is missing';
      throw new TkmsError('bad_proof', `key ${result.keyId} was made at epoch ${result.epoch ?? 0}, before the pinned epoch ${pin.epoch}; the certificate arriving at the pinned committee ${why}`);
    }
    let epochs: KeyEpochs;
    try {
      epochs = followKey(pin, arrived, certificates);
    } catch (e) {
      throw new TkmsError('bad_proof', `key ${result.keyId}: the committee's handover certificates do not verify: ${isTkmsError(e) ? e.message : 'invalid'}`);
    }
    return this.verifiedKey(result, epochs, true);
  }

  private verifiedKey(result: DkgPublicResult, epochs: KeyEpochs, pinned: boolean): VerifiedKey {
    const keyId = result.keyId;
    const current = epochs.byEpoch.get(epochs.epoch)!;
    return {
      keyId,
      publicKey: decodePoint(result.groupPublicKey, 'public key'),
      publicKeyHex: result.groupPublicKey,
      t: current.t,
      n: current.verificationShares.size,
      committeeId: result.committeeId,
      verificationShares: current.verificationShares,
      epoch: epochs.epoch,
      epochs: epochs.byEpoch,
      result,
      pinned,
    };
  }

  /** The committee a key made at `epoch` must be signed by, reached from the pinned committee through verified certificates. */
  private pinnedCommitteeAt(epoch: number, certificates: readonly unknown[]): CommitteeMembership {
    const pin = pinnedMembership(this.opts.trustedMemberKeys!, this.opts.trustedThreshold!, this.opts.committeeId!, this.trustedEpoch);
    if (epoch < pin.epoch) throw new TkmsError('bad_proof', `the key was made at epoch ${epoch}, before the pinned committee's epoch ${pin.epoch}: pin the committee file of epoch ${epoch} or earlier`);
    if (epoch === pin.epoch) return pin;
    const followed = followHandovers(pin, certificates);
    const step = followed.chain.find((c) => c.to.epoch === epoch);
    if (step === undefined) throw new TkmsError('stale_epoch', `the key was made at epoch ${epoch}, which no verified handover certificate reaches from the pinned epoch ${pin.epoch}`);
    return step.to;
  }

  /** Unpinned: the members the gateway names for the key's result (today's behaviour), at the result's epoch. */
  private gatewayCommittee(json: Record<string, unknown>, result: DkgPublicResult): CommitteeMembership {
    const members: { id: number; publicKey: Uint8Array }[] = [];
    if (this.opts.trustedMemberKeys !== undefined) {
      for (const [id, hex] of Object.entries(this.opts.trustedMemberKeys)) members.push({ id: Number(id), publicKey: decodeHex(hex, { name: `member ${id} key`, length: 32 }) });
    } else if (Array.isArray(json.members)) {
      for (const m of json.members as { id?: unknown; publicKey?: unknown }[]) {
        if (typeof m?.id === 'number') members.push({ id: m.id, publicKey: decodeHex(m.publicKey, { name: `member ${m.id} key`, length: 32 }) });
      }
    }
    members.sort((a, b) => a.id - b.id);
    return { committeeId: this.opts.committeeId ?? result.committeeId, epoch: result.epoch ?? 0, t: this.opts.trustedThreshold ?? result.t, members };
  }

  /**
   * The deployment signatures are made for: the pinned committee when there is one (a gateway
   * cannot change it, so a lie only makes the nodes refuse), else the committee of the key's
   * verified DKG result.
   */
  private async deploymentOf(of: { keyId: string } | { handle: string }): Promise<Deployment> {
    if (this.opts.committeeId !== undefined) return { committeeId: this.opts.committeeId };
    const keyId = 'keyId' in of ? of.keyId : await this.keyIdOf(encodeHex(decodeHandle(of.handle)));
    return { committeeId: (await this.getKey(keyId)).committeeId };
  }

  /** The gateway encrypts (it sees the plaintext); the owner's signature binds the plaintext hash. */
  async encrypt(plaintext: Uint8Array, opts: { keyId: string }): Promise<HandleInfo> {
    const deployment = await this.deploymentOf({ keyId: opts.keyId });
    const request = await this.sign<EncryptRequest>(EncryptRequestMessage.struct, {
      keyId: opts.keyId,
      owner: this.signer.addressBytes,
      plaintextHash: sha256(plaintext),
      ...this.window(),
      requestId: newRequestId(),
    }, deployment);
    const { json } = await this.http.request<HandleInfo>('POST', '/v1/encrypt', { request: EncryptRequestMessage.encode(request), plaintext: encodeBase64(plaintext) });
    this.handleKeys.set(json.handle, opts.keyId);
    return json;
  }

  /** Encrypts here to the verified key and registers the ciphertext: the gateway never sees the plaintext. */
  async encryptLocally(plaintext: Uint8Array, opts: { keyId: string }): Promise<HandleInfo> {
    const key = await this.getKey(opts.keyId);
    if (!key.pinned) {
      throw new TkmsError('unauthorized', 'refusing to encrypt locally to a key whose committee is not pinned: pass trustedMemberKeys, trustedThreshold and committeeId (the committee file), or a lying gateway could substitute its own key');
    }
    const owner = this.signer.addressBytes;
    const sealed = await sealToHandle({ publicKey: key.publicKey, keyId: opts.keyId, owner, plaintext });
    const handle = sealed.handle;
    const registration = await this.sign<RegisterHandle>(RegisterHandleMessage.struct, { handle, keyId: opts.keyId, owner }, { committeeId: key.committeeId });
    const { json } = await this.http.request<HandleInfo>('POST', '/v1/handles', {
      registration: RegisterHandleMessage.encode(registration),
      K: encodeHex(sealed.K),
      nonce: encodeHex(sealed.nonce),
      ciphertext: encodeBase64(sealed.ciphertext),
      kProof: encodeHex(sealed.kProof),
    });
    if (json.handle !== encodeHex(handle)) throw new TkmsError('bad_request', 'gateway stored the ciphertext under another handle');
    this.handleKeys.set(json.handle, opts.keyId);
    return json;
  }

  async grant(handle: string, grantee: string, opts: { validForSeconds?: number } = {}): Promise<{ stored: boolean }> {
    const deployment = await this.deploymentOf({ handle });
    const now = Math.floor(Date.now() / 1000);
    const grant = await this.sign<Grant>(GrantMessage.struct, {
      handle: decodeHandle(handle),
      grantee: decodeAddress(grantee, 'grantee'),
      notAfter: now + (opts.validForSeconds ?? 30 * 24 * 3600),
      issuedAt: now,
    }, deployment);
    const { json } = await this.http.request<{ stored: boolean }>('POST', `/v1/handles/${encodeHex(grant.handle)}/grants`, GrantMessage.encode(grant));
    return { stored: json.stored };
  }

  async revoke(handle: string, grantee: string): Promise<RevokeResult> {
    const deployment = await this.deploymentOf({ handle });
    const revocation = await this.sign<Revocation>(RevocationMessage.struct, {
      handle: decodeHandle(handle),
      grantee: decodeAddress(grantee, 'grantee'),
      revokedAt: Math.floor(Date.now() / 1000),
    }, deployment);
    const { json } = await this.http.request<RevokeResult>(
      'DELETE',
      `/v1/handles/${encodeHex(revocation.handle)}/grants/${encodeHex(revocation.grantee)}`,
      RevocationMessage.encode(revocation),
    );
    return { acknowledgedBy: json.acknowledgedBy, needed: json.needed, effective: json.effective };
  }

  private async keyIdOf(handle: string): Promise<string> {
    const known = this.handleKeys.get(handle);
    if (known !== undefined) return known;
    const { json } = await this.http.request<{ keyId: string }>('GET', `/v1/handles/${handle}`);
    assertKeyId(json.keyId);
    this.handleKeys.set(handle, json.keyId);
    return json.keyId;
  }

  private rsa(): Promise<RsaKeyPair> {
    this.rsaKey ??= generateRsaKeyPair(2048);
    return this.rsaKey;
  }

  /**
   * Asks for delegation, verifies, combines and decrypts. When partials fail their proofs,
   * asks again without those nodes (a fresh request id), so up to n − t lying nodes are survived.
   */
  async decrypt(handleHex: string, opts: { keyId?: string; avoidNodes?: number[] } = {}): Promise<DecryptResult> {
    const handleBytes = decodeHandle(handleHex);
    const handle = encodeHex(handleBytes);
    const keyId = opts.keyId ?? (await this.keyIdOf(handle));
    let [key, rsa] = await Promise.all([this.getKey(keyId), this.rsa()]);
    let reloaded = false;
    const rsaSpki = decodeHex(rsa.publicKey.spkiHex);
    // avoidNodes (and recent liars) only steer the first request; retries avoid the nodes that sent bad partials.
    const exclude = this.initialExclude(key, opts.avoidNodes ?? []);
    const badNodes = new Set<number>();
    const rejected: RejectedPartial[] = [];
    const failures: DecryptResult['failures'] = [];
    for (let attempt = 1; ; attempt++) {
      const delegation = await this.sign<Delegation>(DelegationMessage.struct, {
        handle: handleBytes,
        keyId,
        requester: this.signer.addressBytes,
        rsaSpki,
        ...this.window(),
        requestId: newRequestId(),
      }, { committeeId: key.committeeId });
      let json: Record<string, unknown>;
      try {
        ({ json } = await this.http.request<Record<string, unknown>>('POST', `/v1/handles/${handle}/delegate`, {
          delegation: DelegationMessage.encode(delegation),
          ...(exclude.size > 0 ? { exclude: [...exclude].sort((a, b) => a - b) } : {}),
        }));
      } catch (e) {
        if (attempt >= MAX_ATTEMPTS || !committeeInFlux(e)) throw e;
        // Members commit a handover a moment apart (a joiner first syncs revocations): asked again a
        // moment later, they answer at one epoch.
        await new Promise((r) => setTimeout(r, COMMITTEE_SETTLE_MS));
        this.keys.delete(keyId);
        key = await this.getKey(keyId);
        continue;
      }
      const K = decodeHex(json.K, { name: 'K', length: 33 });
      const nonce = decodeHex(json.nonce, { name: 'nonce', length: 12 });
      const ciphertext = decodeBase64(json.ciphertext, { name: 'ciphertext' });
      const owner = decodeAddress(json.owner, 'owner');
      // The gateway could swap K or the ciphertext; the handle we asked for commits to both.
      if (!equalBytes(deriveHandle({ keyId, K, nonce, ciphertext, owner }), handleBytes)) {
        throw new TkmsError('bad_proof', 'the gateway returned a ciphertext or K that does not belong to this handle');
      }
      if (!Array.isArray(json.partials)) throw new TkmsError('bad_request', 'gateway answer has no partials');
      // Proof bytes are only checked inside recoverSharedSecret, per partial: one node's garbage must not abort the rest.
      const partials = json.partials.map((p, i) => parsePartialAnswer(p, `partials[${i}]`));
      if (Array.isArray(json.failures)) failures.push(...(json.failures as DecryptResult['failures']));
      const epochKnown = key.epoch;
      if (!reloaded && partials.some((p) => (p.epoch ?? 0) > key.epoch)) {
        // A member answered at an epoch after the one this client knows: follow the certificates again, once per decrypt.
        reloaded = true;
        this.keys.delete(keyId);
        key = await this.getKey(keyId);
      }
      try {
        const recovered = await recoverFromEpochs({
          keyId,
          requestId: delegation.requestId,
          // deriveHandle above validated K as a point.
          K,
          epochs: key.epochs,
          partials,
          rsaPrivateKey: rsa.privateKey,
        });
        rejected.push(...recovered.rejected);
        this.noteRejected(key, recovered.rejected);
        try {
          const plaintext = await decryptWithSharedSecretX(recovered.sharedSecretX, nonce, ciphertext);
          return { plaintext, usedNodeIds: recovered.usedNodeIds, rejected, failures, attempts: attempt };
        } finally {
          recovered.sharedSecretX.fill(0);
        }
      } catch (e) {
        if (!isTkmsError(e, 'insufficient_partials')) throw e;
        const refused = (e.details?.rejected as RejectedPartial[] | undefined) ?? [];
        // A partial of an epoch no certificate the gateway passed on reaches (stale_epoch) is no lie: the member moved on first.
        const bad = refused.filter((r) => r.code !== 'stale_epoch').map((r) => r.nodeId);
        rejected.push(...refused);
        this.noteRejected(key, refused);
        for (const id of bad) badNodes.add(id);
        const remaining = key.n - badNodes.size;
        // Honest partials of two epochs (members committing a handover at different moments) do not
        // combine; asked again a moment later they answer at one.
        const mixedEpochs = new Set(partials.map((p) => p.epoch ?? 0)).size > 1;
        // A gateway that had not followed the handover yet asked as many members as the old epoch's t,
        // or passed on partials of an epoch it could not give the certificate of yet (t shrank, so
        // there were enough of them): asked again, it follows (gateway/keys.ts refreshEpoch).
        const ahead = partials.some((p) => (p.epoch ?? 0) > epochKnown);
        const gatewayBehind = ahead && (partials.length < key.t || partials.some((p) => (p.epoch ?? 0) > key.epoch));
        if (gatewayBehind) reloaded = false;
        if (attempt >= MAX_ATTEMPTS || (bad.length === 0 && !mixedEpochs && !gatewayBehind) || remaining < key.t) {
          const named = rejected.map((r) => `node ${r.nodeId} (${r.code})`).join(', ');
          throw new TkmsError('insufficient_partials', `could not collect ${key.t} valid partials after ${attempt} attempts; rejected: ${named || 'none'}`, {
            rejected,
            failures,
          });
        }
        exclude.clear();
        for (const id of badNodes) exclude.add(id);
      }
    }
  }
}

function decodePointBytes(hex: string, name: string): Uint8Array {
  const bytes = decodeHex(hex, { name, length: 33 });
  assertPointBytes(bytes, name);
  return bytes;
}
