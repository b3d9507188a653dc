import assert from 'node:assert/strict';
import { generateKeyPairSync } from 'node:crypto';
import { generateAccount, type Account } from '../../client/account.ts';
import {
  authorizeDelegation,
  isTkmsError,
  publicKeyFromSecret,
  randomBytes,
  randomScalar,
  requireOnChainGrant,
  sealToHandle,
  signDelegation,
  signGrant,
  TkmsError,
  utf8ToBytes,
  type Delegation,
  type Grant,
  type GrantSource,
  type HandleDescriptor,
  type OnChainGrantLookup,
} from '../../core/index.ts';

/**
 * authorizeDelegation by grant source (config acl.mode) with requireOnChainGrant after it, over
 * real accounts and a real handle; the chain is a fake lookup that records what it was asked.
 */

const NOW = 1_700_000_000;
const DEPLOYMENT = { committeeId: 'committee-a' };
const BLOCK = 4242;

type Requester = 'owner' | 'grant valid' | 'grant absent' | 'grant revoked' | 'grant expired';
type OnChain = 'yes' | 'no' | 'unavailable';
const MODES: GrantSource[] = ['signed', 'chain', 'either'];
const REQUESTERS: Requester[] = ['owner', 'grant valid', 'grant absent', 'grant revoked', 'grant expired'];
const ON_CHAIN: OnChain[] = ['yes', 'no', 'unavailable'];

/** What each combination must come to, and whether the chain may be asked at all. */
function expected(mode: GrantSource, who: Requester, chain: OnChain): { outcome: string; asksChain: boolean } {
  if (who === 'owner') return { outcome: 'ok', asksChain: false };
  if (mode === 'signed') return { outcome: { 'grant valid': 'ok', 'grant absent': 'unauthorized', 'grant revoked': 'revoked', 'grant expired': 'expired' }[who], asksChain: false };
  if (mode === 'chain' && who !== 'grant absent') return { outcome: 'signed_grants_refused', asksChain: false };
  if (mode === 'either' && who === 'grant valid') return { outcome: 'ok', asksChain: false };
  return { outcome: { yes: 'ok', no: 'unauthorized', unavailable: 'unavailable' }[chain], asksChain: true };
}

describe('on-chain ACL: authorizeDelegation × grant source × on-chain answer', function () {
  this.timeout(60_000);
  let owner: Account;
  let grantee: Account;
  let handle: Uint8Array;
  let descriptor: HandleDescriptor;
  let rsaSpki: Uint8Array;

  before(async () => {
    owner = generateAccount();
    grantee = generateAccount();
    const sealed = await sealToHandle({ publicKey: publicKeyFromSecret(randomScalar()), keyId: 'k1', owner: owner.addressBytes, plaintext: utf8ToBytes('on chain') });
    handle = sealed.handle;
    descriptor = { keyId: 'k1', K: sealed.K, nonce: sealed.nonce, ciphertextHash: sealed.ciphertextHash, owner: sealed.owner, kProof: sealed.kProof };
    rsaSpki = new Uint8Array(generateKeyPairSync('rsa', { modulusLength: 2048 }).publicKey.export({ type: 'spki', format: 'der' }));
  });

  function delegationBy(account: Account): Delegation {
    return signDelegation(
      account.secretKey,
      { handle, keyId: 'k1', requester: account.addressBytes, rsaSpki, notBefore: NOW - 60, notAfter: NOW + 600, requestId: randomBytes(16) },
      DEPLOYMENT,
    );
  }

  function grantFor(who: Requester): Grant | undefined {
    if (who === 'owner' || who === 'grant absent') return undefined;
    const notAfter = who === 'grant expired' ? NOW - 3600 : NOW + 86_400;
    return signGrant(owner.secretKey, { handle, grantee: grantee.addressBytes, notAfter, issuedAt: NOW - 7200 }, DEPLOYMENT);
  }

  function fakeChain(answer: OnChain): { lookup: OnChainGrantLookup; asked: Parameters<OnChainGrantLookup>[0][] } {
    const asked: Parameters<OnChainGrantLookup>[0][] = [];
    const lookup: OnChainGrantLookup = async (query) => {
      asked.push(query);
      if (answer === 'unavailable') throw new TkmsError('unavailable', 'the RPC did not answer');
      return answer === 'yes';
    };
    return { lookup, asked };
  }

  async function decide(mode: GrantSource, who: Requester, answer: OnChain, block: number | 'none' = BLOCK): Promise<{ outcome: string; message: string; asked: Parameters<OnChainGrantLookup>[0][] }> {
    const requester = who === 'owner' ? owner : grantee;
    const chain = fakeChain(answer);
    try {
      const auth = authorizeDelegation({
        deployment: DEPLOYMENT,
        delegation: delegationBy(requester),
        descriptor,
        grant: grantFor(who),
        revokedAt: () => (who === 'grant revoked' ? NOW - 60 : undefined),
        nowSeconds: NOW,
        grantSource: mode,
      });
      await requireOnChainGrant(auth, { delegation: delegationBy(requester), descriptor, block: block === 'none' ? undefined : block, isGrantedAt: chain.lookup });
      return { outcome: 'ok', message: '', asked: chain.asked };
    } catch (e) {
      assert.ok(isTkmsError(e), `a typed error, got ${String(e)}`);
      return { outcome: e.code, message: e.message, asked: chain.asked };
    }
  }

  for (const mode of MODES) {
    for (const who of REQUESTERS) {
      for (const answer of ON_CHAIN) {
        const want = expected(mode, who, answer);
        it(`mode ${mode}, ${who}, on chain ${answer} → ${want.outcome}${want.asksChain ? '' : ' (chain not asked)'}`, async () => {
          const got = await decide(mode, who, answer);
          assert.equal(got.outcome, want.outcome, got.message);
          assert.equal(got.asked.length, want.asksChain ? 1 : 0, 'on-chain lookups');
          for (const q of got.asked) {
            assert.deepEqual(q.owner, owner.addressBytes, 'the owner is the handle\'s, from its commitment');
            assert.deepEqual(q.grantee, grantee.addressBytes);
            assert.deepEqual(q.handle, handle);
            assert.equal(q.block, BLOCK);
          }
        });
      }
    }
  }

  it('mode chain: the refusal of a signed grant names acl.mode', async () => {
    const got = await decide('chain', 'grant valid', 'yes');
    assert.match(got.message, /acl\.mode = chain/);
  });

  it('mode either: a "no" on chain after a refused signed grant names both', async () => {
    const revoked = await decide('either', 'grant revoked', 'no');
    assert.match(revoked.message, new RegExp(`no on-chain grant .* at block ${BLOCK}`));
    assert.match(revoked.message, /signed grant does not count \(revoked:/);
    const absent = await decide('either', 'grant absent', 'no');
    assert.match(absent.message, new RegExp(`^no signed grant and no on-chain grant .* at block ${BLOCK}$`));
  });

  it('mode chain: a "no" on chain names the chain only (signed grants do not count there)', async () => {
    const got = await decide('chain', 'grant absent', 'no');
    assert.match(got.message, new RegExp(`^no on-chain grant .* at block ${BLOCK}$`));
  });

  it('a request that needs the chain but names no block is bad_request, and the chain is not asked', async () => {
    for (const mode of ['chain', 'either'] as const) {
      const got = await decide(mode, 'grant absent', 'yes', 'none');
      assert.equal(got.outcome, 'bad_request');
      assert.match(got.message, /aclBlock/);
      assert.equal(got.asked.length, 0);
    }
  });

  it('the chain errors pass through with their codes (never a grant)', async () => {
    for (const code of ['acl_block_too_old', 'acl_block_ahead', 'unavailable'] as const) {
      const auth = authorizeDelegation({ deployment: DEPLOYMENT, delegation: delegationBy(grantee), descriptor, grant: undefined, revokedAt: () => undefined, nowSeconds: NOW, grantSource: 'chain' });
      await assert.rejects(
        requireOnChainGrant(auth, { delegation: delegationBy(grantee), descriptor, block: BLOCK, isGrantedAt: async () => Promise.reject(new TkmsError(code, 'from the reader')) }),
        (e: unknown) => isTkmsError(e) && e.code === code,
      );
    }
  });

  it('the chain is asked only after the requester\'s signature verified and its rate limit was charged', async () => {
    const charged: string[] = [];
    // Signed by the grantee but naming someone else as the requester.
    const forged = { ...delegationBy(grantee), requester: generateAccount().addressBytes };
    assert.throws(
      () => authorizeDelegation({ deployment: DEPLOYMENT, delegation: forged, descriptor, grant: undefined, revokedAt: () => undefined, nowSeconds: NOW, grantSource: 'chain', onRequester: () => charged.push('x') }),
      (e: unknown) => isTkmsError(e) && e.code === 'unauthorized',
    );
    assert.deepEqual(charged, [], 'a forged delegation charges nobody');
    const limited = (): never => {
      throw new TkmsError('rate_limited', 'over the limit');
    };
    assert.throws(
      () => authorizeDelegation({ deployment: DEPLOYMENT, delegation: delegationBy(grantee), descriptor, grant: undefined, revokedAt: () => undefined, nowSeconds: NOW, grantSource: 'chain', onRequester: limited }),
      (e: unknown) => isTkmsError(e) && e.code === 'rate_limited',
    );
  });
});
