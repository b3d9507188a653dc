import { DecryptApprovalMessage, type DecryptApproval } from '../core/keys/decrypt-approval.ts';
import { sha256 } from '@noble/hashes/sha2.js';
import {
  assertKeyId,
  decodeAddress,
  decodeBase64,
  decodeHandle,
  decodeHex,
  decodePoint,
  type Point,
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
  type RsaKeyPair,
} from '../core/index.ts';
import { subtle } from '../core/webcrypto.ts';
import { GatewayHttp } from './gateway-http.ts';
import { recoverFromEpochs, type RejectedPartial } from './partials.ts';
import { MAX_EPOCH } from '../core/committee.ts';
import { requestSigner, type RequestSigner } from './signer.ts';
import type { DecryptResult, HandleInfo, NodeMisbehaviour, RevokeResult, TkmsClientOptions, VerifiedKey } from './client-types.ts';
import { SignRequestMessage, type SignMessage, type SignRequest } from '../core/signing/sign-request.ts';
import { psbtBytes, requestSignature, signingTarget, type SignatureResult } from './signing.ts';
import { NodeSuspects } from './node-suspects.ts';
import { VerifiedKeys } from './verified-keys.ts';
import { KeyAdmin } from './key-admin.ts';
import { encryptionTarget, materialTarget, type KeyTarget } from './key-target.ts';
import { derivedPublicKey, deriveKeyTweak } from '../core/keys/derive.ts';

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

/**
 * The tkms client: signs requests with an Ethereum-style account, talks to a gateway, and
 * decrypts locally. It trusts nothing it can check: the key's DKG result (member
 * signatures, polynomial consistency), the handle commitment of what the gateway returns,
 * and every partial's DLEQ proof. WebCrypto only on the decrypt path, so it runs in browsers.
 */
export class TkmsClient {
  readonly http: GatewayHttp;
  /** Managed keys: describe, list, history, and admin changes signed by this client's account (`keys.as(other)` for another admin). */
  readonly keys: KeyAdmin;
  private rsaKey: Promise<RsaKeyPair> | undefined;
  private readonly verifiedKeys: VerifiedKeys;
  private readonly handleKeys = new Map<string, string>();
  /** What each material id a handle names is made of (a derived key's root and tweak); fixed for good. */
  private readonly materials = new Map<string, KeyTarget>();
  private readonly validitySeconds: number;
  private readonly suspects: NodeSuspects;
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
    const suspectMs = opts.suspectMs ?? DEFAULT_SUSPECT_MS;
    if (!Number.isSafeInteger(suspectMs) || suspectMs < 0) throw new TkmsError('bad_request', 'suspectMs must be a non-negative integer');
    this.suspects = new NodeSuspects(suspectMs);
    this.verifiedKeys = new VerifiedKeys(this.http, opts);
    this.keys = new KeyAdmin({
      http: this.http,
      signer: opts.account,
      ...(opts.committeeId !== undefined ? { committeeId: opts.committeeId } : {}),
      ...(opts.trustedMemberKeys !== undefined ? { trustedMemberKeys: opts.trustedMemberKeys } : {}),
      ...(opts.trustedThreshold !== undefined ? { trustedThreshold: opts.trustedThreshold } : {}),
    });
  }

  /**
   * Every node whose partials failed verification for this client, with counts by reason: what an
   * application exports as a metric (only a requester can see a lying node: the partials are
   * wrapped to its key). Answers are not signed by the nodes, so a dishonest gateway can also
   * make a node look bad here; it cannot make a bad partial pass. Sorted by node id, then reason.
   */
  misbehaviour(): NodeMisbehaviour[] {
    return this.suspects.misbehaviour();
  }

  get address(): string {
    return this.signer.address;
  }

  private window(): { notBefore: number; notAfter: number } {
    const now = Math.floor(Date.now() / 1000);
    return { notBefore: now, notAfter: now + this.validitySeconds };
  }

  /** The unsigned message with its signature by this client's signer. */
  private async signed<T extends { signature: Uint8Array }>(struct: Eip712Struct, unsigned: Omit<T, 'signature'>, deployment: Deployment): Promise<T> {
    return { ...unsigned, signature: await this.signer.sign(struct, unsigned, deployment) } as T;
  }

  /**
   * The key's public data, verified: a vote quorum (core/quorum.ts) of member signatures over the whole DKG result (checked against
   * the committee of the epoch it was made at, reached from the pinned one through verified
   * certificates), consistent verification shares, and its Y_i at every later epoch from the handover
   * certificates, never from the gateway's word alone.
   */
  async getKey(keyId: string): Promise<VerifiedKey> {
    return this.verifiedKeys.get(keyId);
  }

  /**
   * The deployment signatures are made for: the pinned committee when there is one (a gateway
   * cannot change it, so a lie only makes the nodes refuse), else the committee of the key's
   * verified DKG result.
   */
  private async deploymentOf(of: { keyId: string } | { handle: string }): Promise<Deployment> {
    if (this.opts.committeeId !== undefined) return { committeeId: this.opts.committeeId };
    const keyId = 'keyId' in of ? of.keyId : (await materialTarget(this.http, await this.keyIdOf(encodeHex(decodeHandle(of.handle))), this.materials)).verifiedKeyId;
    return { committeeId: (await this.getKey(keyId)).committeeId };
  }

  /** τ for a derived key, from the root public key this client verified; undefined for a key of its own. */
  private tweakOf(target: KeyTarget, verified: VerifiedKey): bigint | undefined {
    const d = target.derivation;
    return d === undefined ? undefined : deriveKeyTweak(decodeHex(verified.publicKeyHex, { name: 'root public key', length: 33 }), d.path, d.version);
  }

  /**
   * Signs `message` with a SIGN_VERIFY key (by id or alias) through t members; the signature is
   * checked here under the key's verified public key before it is returned.
   */
  async sign(keyIdOrAlias: string, message: { data: Uint8Array } | { psbt: Uint8Array | string }): Promise<SignatureResult> {
    const target = await signingTarget(this.http, keyIdOrAlias);
    const key = await this.getKey(target.materialId);
    // The suite the gateway's view names must be the one of the key verified here: an Ed25519 result signs Ed25519.
    if ((key.group.name === 'ed25519') !== (target.suite === 'ed25519')) throw new TkmsError('bad_proof', `key ${target.materialId}: the gateway calls it a ${target.suite} key, but its verified DKG result is over ${key.group.name}`);
    const signMessage: SignMessage = 'data' in message ? { kind: 'raw', data: message.data } : { kind: 'psbt', psbt: psbtBytes(message.psbt) };
    return requestSignature({
      http: this.http,
      target,
      groupPublicKey: decodeHex(key.publicKeyHex, { name: 'group public key' }),
      message: signMessage,
      window: this.window(),
      requester: this.signer.addressBytes,
      signRequest: (unsigned) => this.signed<SignRequest>(SignRequestMessage.struct, unsigned, { committeeId: key.committeeId }),
    });
  }

  /**
   * The gateway encrypts (it sees the plaintext); the owner's signature binds the plaintext hash.
   * `keyId` may name a managed key (or be its alias): refused unless Enabled, and the handle is made
   * for its current version's material id.
   */
  async encrypt(plaintext: Uint8Array, opts: { keyId: string }): Promise<HandleInfo> {
    const target = await encryptionTarget(this.http, opts.keyId);
    const keyId = target.keyId;
    const deployment = await this.deploymentOf({ keyId: target.verifiedKeyId });
    const request = await this.signed<EncryptRequest>(EncryptRequestMessage.struct, {
      keyId,
      owner: this.signer.addressBytes,
      plaintextHash: sha256(plaintext),
      ...this.window(),
      requestId: newRequestId(),
    }, deployment);
    const { json } = await this.http.request<HandleInfo>('POST', '/v1/encrypt', { request: EncryptRequestMessage.encode(request), plaintext: encodeBase64(plaintext) });
    this.handleKeys.set(json.handle, keyId);
    return json;
  }

  /**
   * Encrypts here to the verified key and registers the ciphertext: the gateway never sees the
   * plaintext. A managed key as in encrypt: the public key is the verified one of the current
   * version's material id (a derived key's: the verified root's plus its tweak), never the one the
   * gateway's key view shows.
   */
  async encryptLocally(plaintext: Uint8Array, opts: { keyId: string }): Promise<HandleInfo> {
    const target = await encryptionTarget(this.http, opts.keyId);
    const keyId = target.keyId;
    const key = await this.getKey(target.verifiedKeyId);
    if (!key.pinned) {
      throw new TkmsError('unauthorized', 'refusing to encrypt locally to a key whose committee is not pinned: pass trustedMemberKeys, trustedThreshold and committeeId (the committee file), or a lying gateway could substitute its own key');
    }
    const owner = this.signer.addressBytes;
    const tweak = this.tweakOf(target, key);
    // A derived key's public key is computed here from the verified root, never taken from the gateway.
    if (key.group.name !== 'secp256k1') throw new TkmsError('key_usage_mismatch', `key ${key.keyId} is an ${key.group.name} key: it does not encrypt`);
    const publicKey = tweak === undefined ? (key.publicKey as Point) : decodePoint(derivedPublicKey(decodeHex(key.publicKeyHex, { name: 'root public key', length: 33 }), tweak), 'derived public key');
    const sealed = await sealToHandle({ publicKey, keyId, owner, plaintext });
    const handle = sealed.handle;
    const registration = await this.signed<RegisterHandle>(RegisterHandleMessage.struct, { handle, keyId, owner }, { committeeId: key.committeeId });
    const { json } = await this.http.request<HandleInfo>('POST', '/v1/handles', {
      registration: RegisterHandleMessage.encode(registration),
      K: encodeHex(sealed.K),
      nonce: encodeHex(sealed.nonce),
      ciphertext: encodeBase64(sealed.ciphertext),
      kProof: encodeHex(sealed.kProof),
    });
    if (json.handle !== encodeHex(handle)) throw new TkmsError('bad_request', 'gateway stored the ciphertext under another handle');
    this.handleKeys.set(json.handle, keyId);
    return json;
  }

  async grant(handle: string, grantee: string, opts: { validForSeconds?: number } = {}): Promise<{ stored: boolean }> {
    const deployment = await this.deploymentOf({ handle });
    const now = Math.floor(Date.now() / 1000);
    const grant = await this.signed<Grant>(GrantMessage.struct, {
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
    const revocation = await this.signed<Revocation>(RevocationMessage.struct, {
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
  async decrypt(handleHex: string, opts: { keyId?: string; avoidNodes?: number[]; approvals?: DecryptApproval[] } = {}): Promise<DecryptResult> {
    const handleBytes = decodeHandle(handleHex);
    const handle = encodeHex(handleBytes);
    const keyId = opts.keyId ?? (await this.keyIdOf(handle));
    // A derived key's partials are its root's, checked against the root's verified Y_i; τ·K is added when combining.
    const target = await materialTarget(this.http, keyId, this.materials);
    const verifiedKeyId = target.verifiedKeyId;
    let [key, rsa] = await Promise.all([this.getKey(verifiedKeyId), this.rsa()]);
    let reloaded = false;
    const rsaSpki = decodeHex(rsa.publicKey.spkiHex);
    // avoidNodes (and recent liars) only steer the first request; retries avoid the nodes that sent bad partials.
    const exclude = this.suspects.initialExclude(key, opts.avoidNodes ?? []);
    const badNodes = new Set<number>();
    const rejected: RejectedPartial[] = [];
    const failures: DecryptResult['failures'] = [];
    for (let attempt = 1; ; attempt++) {
      const delegation = await this.signed<Delegation>(DelegationMessage.struct, {
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
          // A sensitive key's policy asks for approvers' co-signatures (docs/key-policy.md); each names this handle and requester.
          ...(opts.approvals === undefined || opts.approvals.length === 0 ? {} : { approvals: opts.approvals.map((a) => DecryptApprovalMessage.encode(a)) }),
        }));
      } catch (e) {
        if (attempt >= MAX_ATTEMPTS || !committeeInFlux(e)) throw e;
        // Members commit a handover a moment apart (a joiner first syncs revocations): asked again a
        // moment later, they answer at one epoch.
        await new Promise((r) => setTimeout(r, COMMITTEE_SETTLE_MS));
        this.verifiedKeys.forget(verifiedKeyId);
        key = await this.getKey(verifiedKeyId);
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
        this.verifiedKeys.forget(verifiedKeyId);
        key = await this.getKey(verifiedKeyId);
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
          ...(target.derivation === undefined ? {} : { tweak: this.tweakOf(target, key)! }),
        });
        rejected.push(...recovered.rejected);
        this.suspects.noteRejected(key, recovered.rejected);
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
        this.suspects.noteRejected(key, refused);
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

