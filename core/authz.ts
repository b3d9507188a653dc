import { sha256 } from '@noble/hashes/sha2.js';
import { keccak_256 } from '@noble/hashes/sha3.js';
import { bytesToHex, encodeHex, equalBytes, utf8ToBytes } from './bytes.ts';
import { TkmsError } from './errors.ts';
import { LruCache } from './lru.ts';
import { recoverTypedDataSigner, signTypedData, type Eip712Domain, type Eip712Struct, type Eip712Value } from './eip712.ts';
import { assertCommitteeId } from './dkg/result.ts';
import { deriveHandleFromDigest, HANDLE_LENGTH } from './handle.ts';
import { ADDRESS_LENGTH, REQUEST_ID_LENGTH } from './identifiers.ts';
import {
  DelegationMessage,
  EncryptRequestMessage,
  GrantMessage,
  HandleDescriptorMessage,
  RegisterHandleMessage,
  RevocationMessage,
} from './messages.ts';
import type { DecodedFields } from './schema.ts';
import { verifyEphemeralKeyProof } from './sealed-handle.ts';

/**
 * Who may decrypt what. Every message here is an EIP-712 signature by an Ethereum-style
 * account, so the same checks run on the gateway and, independently, on every node:
 * a compromised gateway cannot forge any of them.
 *
 *   owner ──RegisterHandle / EncryptRequest──▶ handle (commits to keyId, K, nonce, H(ct), owner)
 *   owner ──Grant{handle, grantee, notAfter, issuedAt}──▶ grantee
 *   owner ──Revocation{handle, grantee, revokedAt}──▶ cancels grants issued at or before revokedAt
 *   requester ──Delegation{handle, keyId, rsaSpki, window, requestId}──▶ nodes
 *
 * Every signature names the deployment it is for (tkmsDomain): one made for one committee is
 * worth nothing at another, so a gateway or node of one deployment cannot replay it elsewhere.
 */
export const TKMS_EIP712_NAME = 'tkms';
/** Version 2 binds the deployment into the domain; version 1 ({name, version} only) did not. */
export const TKMS_EIP712_VERSION = '2';
/**
 * Version 1 signatures were valid on every deployment, so they are refused; this domain is kept
 * only to tell their signers why (legacy_signature) instead of a bare "not signed by".
 */
const LEGACY_EIP712_DOMAIN: Eip712Domain = { name: TKMS_EIP712_NAME, version: '1' };

/** What a signature is bound to: the committee, and the chain wherever one is involved. */
export interface Deployment {
  committeeId: string;
  chainId?: bigint;
}

const COMMITTEE_SALT_PREFIX = 'tkms/committee/';

/** keccak256("tkms/committee/" ‖ committee id): the domain salt, a bytes32 as EIP-712 wants it. */
export function committeeSalt(committeeId: string): Uint8Array {
  assertCommitteeId(committeeId);
  return keccak_256(utf8ToBytes(`${COMMITTEE_SALT_PREFIX}${committeeId}`));
}

/** The EIP-712 domain of a deployment: {name, version "2", chainId (only when given), salt}. */
export function tkmsDomain(deployment: Deployment): Eip712Domain {
  if (typeof deployment !== 'object' || deployment === null) throw new TkmsError('bad_request', 'deployment must be an object');
  const { committeeId, chainId } = deployment;
  return { name: TKMS_EIP712_NAME, version: TKMS_EIP712_VERSION, ...(chainId === undefined ? {} : { chainId }), salt: committeeSalt(committeeId) };
}

/** A delegation request may be valid for at most one hour (ARCHITECTURE.md). */
export const MAX_VALIDITY_SECONDS = 3600;
export const DEFAULT_CLOCK_SKEW_SECONDS = 30;
/**
 * Longest a grant may be valid (notAfter − issuedAt) unless a deployment configures otherwise.
 * It bounds how long a revocation must be kept: one revoked at r cancels only grants issued at or
 * before r, and those are all over by r + this + clock skew.
 */
export const DEFAULT_MAX_GRANT_LIFETIME_SECONDS = 90 * 86_400;


// ---------------------------------------------------------------------------------------
// Message types (decoded: bytes) and their JSON wire forms, all from core/messages.ts.

export type HandleDescriptor = DecodedFields<typeof HandleDescriptorMessage.fields>;
export type Delegation = DecodedFields<typeof DelegationMessage.fields>;
export type UnsignedDelegation = Omit<Delegation, 'signature'>;
export type Grant = DecodedFields<typeof GrantMessage.fields>;
export type UnsignedGrant = Omit<Grant, 'signature'>;
export type Revocation = DecodedFields<typeof RevocationMessage.fields>;
export type UnsignedRevocation = Omit<Revocation, 'signature'>;
export type EncryptRequest = DecodedFields<typeof EncryptRequestMessage.fields>;
export type UnsignedEncryptRequest = Omit<EncryptRequest, 'signature'>;
export type RegisterHandle = DecodedFields<typeof RegisterHandleMessage.fields>;
export type UnsignedRegisterHandle = Omit<RegisterHandle, 'signature'>;


// ---------------------------------------------------------------------------------------
// Signing (client side) and signer recovery.

type Message = Record<string, Eip712Value>;

const address = (b: Uint8Array): string => encodeHex(b);

const delegationMessage = DelegationMessage.typedData;
const grantMessage = GrantMessage.typedData;
const revocationMessage = RevocationMessage.typedData;
const encryptMessage = EncryptRequestMessage.typedData;
const registerMessage = RegisterHandleMessage.typedData;

export function signDelegation(secretKey: Uint8Array, d: UnsignedDelegation, deployment: Deployment): Delegation {
  return { ...d, signature: signTypedData(secretKey, tkmsDomain(deployment), DelegationMessage.struct, delegationMessage(d)) };
}
export function signGrant(secretKey: Uint8Array, g: UnsignedGrant, deployment: Deployment): Grant {
  return { ...g, signature: signTypedData(secretKey, tkmsDomain(deployment), GrantMessage.struct, grantMessage(g)) };
}
export function signRevocation(secretKey: Uint8Array, r: UnsignedRevocation, deployment: Deployment): Revocation {
  return { ...r, signature: signTypedData(secretKey, tkmsDomain(deployment), RevocationMessage.struct, revocationMessage(r)) };
}
export function signEncryptRequest(secretKey: Uint8Array, r: UnsignedEncryptRequest, deployment: Deployment): EncryptRequest {
  return { ...r, signature: signTypedData(secretKey, tkmsDomain(deployment), EncryptRequestMessage.struct, encryptMessage(r)) };
}
export function signRegisterHandle(secretKey: Uint8Array, r: UnsignedRegisterHandle, deployment: Deployment): RegisterHandle {
  return { ...r, signature: signTypedData(secretKey, tkmsDomain(deployment), RegisterHandleMessage.struct, registerMessage(r)) };
}

function requireSigner(struct: Eip712Struct, message: Message, signature: Uint8Array, expected: Uint8Array, what: string, deployment: Deployment): void {
  const signer = recoverTypedDataSigner(tkmsDomain(deployment), struct, message, signature);
  if (equalBytes(signer, expected)) return;
  // Only after the signature failed: valid requests never pay this second recovery, and it is
  // what lets a signer of the old format be told to sign again rather than "not signed by".
  if (equalBytes(recoverTypedDataSigner(LEGACY_EIP712_DOMAIN, struct, message, signature), expected)) {
    throw new TkmsError(
      'legacy_signature',
      `${what} is signed in format version 1, which names no deployment and is no longer accepted: sign it again (domain version ${TKMS_EIP712_VERSION}, committee ${deployment.committeeId})`,
    );
  }
  throw new TkmsError('unauthorized', `${what} is not signed by ${address(expected)} for this deployment (committee ${deployment.committeeId})`);
}

// ---------------------------------------------------------------------------------------
// Checks. Each throws a typed error (bad_request, expired, unauthorized, revoked) or returns.

export interface TimeOptions {
  nowSeconds: number;
  clockSkewSeconds?: number;
}

/** A signed window [notBefore, notAfter], at most an hour long, containing now (± skew). */
export function checkValidityWindow(notBefore: number, notAfter: number, time: TimeOptions, what: string): void {
  const skew = time.clockSkewSeconds ?? DEFAULT_CLOCK_SKEW_SECONDS;
  if (notAfter <= notBefore) throw new TkmsError('bad_request', `${what}: notAfter must be later than notBefore`);
  if (notAfter - notBefore > MAX_VALIDITY_SECONDS) {
    throw new TkmsError('bad_request', `${what}: validity window must be at most ${MAX_VALIDITY_SECONDS} s, got ${notAfter - notBefore} s`);
  }
  if (time.nowSeconds > notAfter + skew) throw new TkmsError('expired', `${what} expired at ${notAfter} (now ${time.nowSeconds})`);
  if (time.nowSeconds < notBefore - skew) throw new TkmsError('expired', `${what} is not valid before ${notBefore} (now ${time.nowSeconds}, skew ${skew} s)`);
}

/** The handle must commit to exactly this key, K, nonce, ciphertext hash and owner. */
export function checkHandleCommitment(handle: Uint8Array, descriptor: HandleDescriptor): void {
  if (!equalBytes(deriveHandleFromDigest(descriptor), handle)) {
    throw new TkmsError('unauthorized', 'handle does not commit to this key id, K, nonce, ciphertext and owner');
  }
}

/** K proofs that verified, by handle: every decrypt of a handle presents the same proof again. */
const verifiedKProofs = new LruCache<string, true>(4096);

/**
 * Whoever made the handle knew k for its K: without this, anyone could copy a victim's K into
 * a handle of their own and be its "owner" (see core/sealed-handle.ts).
 */
function checkKBinding(descriptor: HandleDescriptor, handle?: Uint8Array): void {
  // With the handle already checked against the descriptor, (handle, proof) names the whole statement.
  const key = handle === undefined ? undefined : `${bytesToHex(handle)}${bytesToHex(descriptor.kProof)}`;
  if (key !== undefined && verifiedKProofs.get(key) === true) return;
  if (!verifyEphemeralKeyProof(descriptor, descriptor.kProof)) {
    throw new TkmsError('unauthorized', 'K is not bound to this handle: the proof of the ephemeral key does not verify');
  }
  if (key !== undefined) verifiedKProofs.set(key, true);
}

export function verifyRegisterHandle(r: RegisterHandle, descriptor: HandleDescriptor, deployment: Deployment): void {
  if (r.keyId !== descriptor.keyId || !equalBytes(r.owner, descriptor.owner)) throw new TkmsError('unauthorized', 'registration does not match the handle');
  checkHandleCommitment(r.handle, descriptor);
  checkKBinding(descriptor);
  requireSigner(RegisterHandleMessage.struct, registerMessage(r), r.signature, r.owner, 'handle registration', deployment);
}

export function verifyEncryptRequest(r: EncryptRequest, plaintext: Uint8Array, time: TimeOptions, deployment: Deployment): void {
  checkValidityWindow(r.notBefore, r.notAfter, time, 'encrypt request');
  if (!equalBytes(sha256(plaintext), r.plaintextHash)) throw new TkmsError('unauthorized', 'plaintextHash does not match the plaintext');
  requireSigner(EncryptRequestMessage.struct, encryptMessage(r), r.signature, r.owner, 'encrypt request', deployment);
}

/** The owner of the described handle, a handle whose K proof holds, signed this revocation. */
export function verifyRevocation(r: Revocation, descriptor: HandleDescriptor, deployment: Deployment): void {
  checkHandleCommitment(r.handle, descriptor);
  // Without a valid K proof the handle can be invented for free, and so can revocations to hold.
  checkKBinding(descriptor, r.handle);
  requireSigner(RevocationMessage.struct, revocationMessage(r), r.signature, descriptor.owner, 'revocation', deployment);
}

/** The owner of the described handle signed this grant (validity in time is checked at use). */
export function verifyGrant(g: Grant, descriptor: HandleDescriptor, deployment: Deployment): void {
  checkHandleCommitment(g.handle, descriptor);
  requireSigner(GrantMessage.struct, grantMessage(g), g.signature, descriptor.owner, 'grant', deployment);
}

/**
 * A grant's times are ones a revocation can still catch: issued no later than now (± skew), since
 * revocations may not be dated later than that, and valid for at most `maxLifetimeSeconds`, which
 * is how long revocations are kept.
 */
export function checkGrantTimes(g: UnsignedGrant, time: TimeOptions, maxLifetimeSeconds = DEFAULT_MAX_GRANT_LIFETIME_SECONDS): void {
  const skew = time.clockSkewSeconds ?? DEFAULT_CLOCK_SKEW_SECONDS;
  if (g.issuedAt > time.nowSeconds + skew) throw new TkmsError('bad_request', `the grant is issued in the future (issuedAt ${g.issuedAt}, now ${time.nowSeconds}, skew ${skew} s)`);
  if (g.notAfter - g.issuedAt > maxLifetimeSeconds) {
    throw new TkmsError('bad_request', `a grant may be valid for at most ${maxLifetimeSeconds} s after issuedAt, this one for ${g.notAfter - g.issuedAt} s`);
  }
}

export interface DelegationCheck extends TimeOptions {
  /** The checker's own deployment, never one named by the request. */
  deployment: Deployment;
  delegation: Delegation;
  descriptor: HandleDescriptor;
  grant: Grant | undefined;
  /** The latest revocation this checker has seen for (handle, grantee), if any. */
  revokedAt: (handle: Uint8Array, grantee: Uint8Array) => number | undefined;
  /**
   * Called with the requester once its signature verified, before the costlier checks
   * (K proof, grant signature): the place for a per-account rate limit that nobody else can spend.
   */
  onRequester?: (requester: Uint8Array) => void;
  /** The deployment's bound on notAfter − issuedAt of a grant (checkGrantTimes). */
  maxGrantLifetimeSeconds?: number;
  /** Where grants come from (config acl.mode); default 'signed'. */
  grantSource?: GrantSource;
}

/**
 * Where a deployment's grants come from (config acl.mode): owner-signed grants, the TkmsAcl
 * contract only, or either. The one list of modes: config's acl.mode field is built from it.
 */
export const GRANT_SOURCES = ['signed', 'chain', 'either'] as const;
export type GrantSource = (typeof GRANT_SOURCES)[number];

export interface AuthorizedDelegation {
  requester: Uint8Array;
  /** True when the requester is not the owner and decrypts through a grant. */
  viaGrant: boolean;
  /** The handle's K (compressed), validated, for the caller to multiply. */
  K: Uint8Array;
  /**
   * Set when no signed grant decided it (acl.mode chain or either, requester not the owner): the
   * caller may serve only once requireOnChainGrant found a grant on chain. `signedRefusal` is why
   * the signed grant presented did not count, and `signedAbsent` that none was presented (both
   * mode either only), for the final refusal to name both.
   */
  onChain?: { signedRefusal?: TkmsError; signedAbsent?: true };
}

/**
 * The whole chain owner → grant → requester, checked from signatures alone. Checks run from
 * cheapest (lengths, window, key id, one SHA-256) to costliest (signature recoveries, the K
 * proof); nothing here touches a secret. Replay is the caller's (stateful) check.
 */
export function authorizeDelegation(check: DelegationCheck): AuthorizedDelegation {
  const { delegation: d, descriptor } = check;
  if (d.handle.length !== HANDLE_LENGTH || d.requestId.length !== REQUEST_ID_LENGTH || d.requester.length !== ADDRESS_LENGTH) {
    throw new TkmsError('bad_request', 'delegation fields have wrong lengths');
  }
  checkValidityWindow(d.notBefore, d.notAfter, check, 'delegation request');
  if (d.keyId !== descriptor.keyId) throw new TkmsError('unauthorized', `delegation names key ${d.keyId} but the handle belongs to key ${descriptor.keyId}`);
  checkHandleCommitment(d.handle, descriptor);
  requireSigner(DelegationMessage.struct, delegationMessage(d), d.signature, d.requester, 'delegation request', check.deployment);
  check.onRequester?.(d.requester);
  // checkHandleCommitment validated K as a point on the curve.
  const K = descriptor.K;
  checkKBinding(descriptor, d.handle);
  if (equalBytes(d.requester, descriptor.owner)) return { requester: d.requester, viaGrant: false, K };

  const source = check.grantSource ?? 'signed';
  if (source === 'signed') {
    checkSignedGrant(check);
    return { requester: d.requester, viaGrant: true, K };
  }
  if (source === 'chain') {
    if (check.grant !== undefined) {
      throw new TkmsError('signed_grants_refused', 'this deployment takes on-chain grants only (acl.mode = chain): an owner-signed grant does not count; the owner grants on the TkmsAcl contract');
    }
    return { requester: d.requester, viaGrant: true, K, onChain: {} };
  }
  if (check.grant === undefined) return { requester: d.requester, viaGrant: true, K, onChain: { signedAbsent: true } };
  try {
    checkSignedGrant(check);
    return { requester: d.requester, viaGrant: true, K };
  } catch (e) {
    if (!(e instanceof TkmsError)) throw e;
    return { requester: d.requester, viaGrant: true, K, onChain: { signedRefusal: e } };
  }
}

/** The signed grant the check carries is the owner's, for this requester and handle, in force now. */
function checkSignedGrant(check: DelegationCheck): void {
  const { delegation: d, descriptor } = check;
  const g = check.grant;
  if (g === undefined) throw new TkmsError('unauthorized', `${address(d.requester)} holds no grant for this handle`);
  if (!equalBytes(g.handle, d.handle)) throw new TkmsError('unauthorized', 'the grant is for another handle');
  if (!equalBytes(g.grantee, d.requester)) throw new TkmsError('unauthorized', `the grant is for ${address(g.grantee)}, not the requester`);
  requireSigner(GrantMessage.struct, grantMessage(g), g.signature, descriptor.owner, 'grant', check.deployment);
  checkGrantTimes(g, check, check.maxGrantLifetimeSeconds);
  const skew = check.clockSkewSeconds ?? DEFAULT_CLOCK_SKEW_SECONDS;
  if (check.nowSeconds > g.notAfter + skew) throw new TkmsError('expired', `the grant expired at ${g.notAfter}`);
  const revokedAt = check.revokedAt(d.handle, d.requester);
  if (revokedAt !== undefined && revokedAt >= g.issuedAt) {
    throw new TkmsError('revoked', `the grant to ${address(d.requester)} was revoked at ${revokedAt}`);
  }
}

/** The on-chain lookup requireOnChainGrant needs (chain/chain-acl.ts ChainAcl.isGrantedAt). */
export type OnChainGrantLookup = (query: { handle: Uint8Array; owner: Uint8Array; grantee: Uint8Array; block: number }) => Promise<boolean>;

export interface OnChainGrantCheck {
  delegation: Delegation;
  descriptor: HandleDescriptor;
  /** The block the gateway named (the request's aclBlock); undefined when it named none. */
  block: number | undefined;
  isGrantedAt: OnChainGrantLookup;
}

/**
 * The second half of authorizeDelegation when it left `onChain` set: an on-chain grant from the
 * handle's owner (from its commitment, never from the request) to the requester at the named
 * block. Lookup errors (unavailable, acl_block_too_old, acl_block_ahead) pass through: doubt is
 * never a grant.
 */
export async function requireOnChainGrant(auth: AuthorizedDelegation, check: OnChainGrantCheck): Promise<void> {
  if (auth.onChain === undefined) return;
  const { delegation: d, descriptor, block } = check;
  if (block === undefined) {
    throw new TkmsError('bad_request', 'this deployment reads grants on chain (acl.mode chain or either): the request must name the ACL block (aclBlock); is the gateway configured with the same acl.mode?');
  }
  if (await check.isGrantedAt({ handle: d.handle, owner: descriptor.owner, grantee: d.requester, block })) return;
  const { signedRefusal, signedAbsent } = auth.onChain;
  const onChainNo = `no on-chain grant from ${address(descriptor.owner)} to ${address(d.requester)} for this handle at block ${block}`;
  // Mode either: the refusal names both places a grant could have come from.
  if (signedAbsent === true) throw new TkmsError('unauthorized', `no signed grant and ${onChainNo}`);
  throw new TkmsError('unauthorized', signedRefusal === undefined ? onChainNo : `${onChainNo}, and the signed grant does not count (${signedRefusal.code}: ${signedRefusal.message})`);
}

/** Map key for (handle, grantee) pairs. */
export function grantKey(handle: Uint8Array, grantee: Uint8Array): string {
  return `${bytesToHex(handle)}:${bytesToHex(grantee)}`;
}
