import { encodeBase64, encodeHex, isTkmsError, TkmsError } from '../core/index.ts';
import type { Deployment } from '../core/authz.ts';
import { parseMaterialKeyId, requireUsable, type ManagedKey } from '../core/keys/key-model.ts';
import type { KeyPolicy } from '../core/keys/policy.ts';
import { finalizeTaprootPsbt } from '../core/signing/psbt.ts';
import { authorizeSigner, planSigning } from '../core/signing/sign-policy.ts';
import { decodeSignMessage, SignRequestMessage, verifySignRequest, type SignMessage } from '../core/signing/sign-request.ts';
import { SIGNING_ALGORITHMS, suiteOfKey, taprootInternalKey, type SigningKeyShares, type SigningSuite } from '../core/signing/suites.ts';
import type { RouteHandler } from '../net/http.ts';
import type { RateLimiter } from '../runtime/rate-limit.ts';
import type { GatewayKeyRegistry } from './key-registry.ts';
import type { KeyDirectory, PublishedKey } from './keys.ts';
import type { GatewayMetrics } from './metrics.ts';
import type { SignCoordinator } from './sign-coordinator.ts';

/**
 * POST /v1/keys/{keyId}/sign. The gateway first makes the members' checks itself (the key's state
 * and usage, the requester's signature and rate limit, who may sign and what), so a request they
 * would refuse costs them nothing, then coordinates FROST with t members. It is not trusted for any of it: each member checks the signed
 * request and the key's policy again, and derives the bytes it signs from the message itself.
 */
/** Each read at use: the route table is also built with no gateway behind it (the API description). */
export interface SignRouteContext {
  keyRegistry: () => GatewayKeyRegistry | undefined;
  keys: () => Pick<KeyDirectory, 'get'>;
  coordinator: () => SignCoordinator;
  /**
   * Members to ask, in order. Transactions go to the same members while they are healthy: each
   * member caps what it signs a day on its own, so spreading transactions over members would let
   * the committee sign more than the cap (up to n/t times it).
   */
  members: (kind: SignMessage['kind']) => number[];
  limiter: () => RateLimiter;
  metrics: () => Pick<GatewayMetrics, 'signatures' | 'signatureSeconds' | 'signatureSharesBlamed'>;
  deployment: () => Deployment;
}

export function signRouteHandlers(ctx: SignRouteContext, time: () => { nowSeconds: number; clockSkewSeconds: number }): Record<string, RouteHandler> {
  return {
    signWithKey: async (_req, _url, body, params) => {
      const started = performance.now();
      let algorithm = 'unknown';
      let outcome = 'error';
      try {
        const o = body as { request: unknown; message: unknown };
        const request = SignRequestMessage.decode(o.request);
        const message = decodeSignMessage(o.message);
        const key = ctx.keyRegistry()?.book.resolve(params.keyId ?? '');
        if (key === undefined) throw new TkmsError('unknown_key', `no managed key ${params.keyId}`);
        const version = versionNamed(key, request.keyId);
        const suite = suiteOfKey(key.keyId, key.spec, key.usage);
        algorithm = SIGNING_ALGORITHMS[suite];
        const now = time();
        requireUsable(key, version, now.nowSeconds);
        const requester = verifySignRequest(request, message, now, ctx.deployment());
        ctx.limiter().take(requester);
        const published = await ctx.keys().get(request.keyId);
        const shares = signingShares(suite, published);
        // The members' own checks, made here first so a request they would refuse costs them nothing
        // (the day's counts are theirs: a cap or a limit already reached is still theirs to refuse).
        authorizeSigner(key, requester, request.requester, now.nowSeconds, 0);
        const plan = planSigning(key.policy as KeyPolicy, key.keyId, suite, message, suite === 'bip340' ? { internalKey: taprootInternalKey(shares.groupPublicKey) } : {}, 0n);
        const messages = plan.messages;
        const inputs = plan.inputIndexes;
        const result = await ctx.coordinator().sign({ materialId: request.keyId, key: shares, request, message, messages, members: ctx.members(message.kind), epoch: published.epoch });
        for (const nodeId of result.blamed) ctx.metrics().signatureSharesBlamed.inc({ node: String(nodeId) });
        const json: Record<string, unknown> = {
          keyId: request.keyId,
          algorithm,
          publicKey: encodeHex(result.publicKey),
          signatures: result.signatures.map(encodeHex),
          signers: result.signers,
          blamed: result.blamed,
          failures: result.failures,
        };
        if (message.kind === 'psbt') {
          const finalized = finalizeTaprootPsbt(message.psbt, new Map(inputs.map((index, j) => [index, result.signatures[j]!])));
          json.inputs = inputs;
          json.psbt = encodeBase64(finalized.psbt);
          if (finalized.tx !== undefined) json.transaction = encodeHex(finalized.tx);
        }
        outcome = 'ok';
        ctx.metrics().signatureSeconds.observe({ algorithm }, (performance.now() - started) / 1000);
        return { status: 200, json };
      } catch (e) {
        if (isTkmsError(e)) outcome = e.code;
        throw e;
      } finally {
        ctx.metrics().signatures.inc({ algorithm, outcome });
      }
    },
  };
}

/** The version of `key` a request's material key id names (bad_request when it names another key). */
function versionNamed(key: ManagedKey, materialId: string): number {
  // As every member reads it (KeyBook.byMaterial), so the gateway never names a version the members do not.
  const { keyId, version } = parseMaterialKeyId(materialId);
  if (keyId !== key.keyId) throw new TkmsError('bad_request', `the request is for key ${materialId}, not a version of ${key.keyId}`);
  return version;
}

/** The key version's public data as FROST takes it, from its published DKG result at the served epoch. */
export function signingShares(suite: SigningSuite, published: PublishedKey): SigningKeyShares {
  const group = published.group;
  if (group.name !== (suite === 'ed25519' ? 'ed25519' : 'secp256k1')) throw new TkmsError('internal', `key ${published.result.keyId} was made over ${group.name}, not the curve of its spec`);
  const verificationShares = new Map([...published.verificationShares].map(([id, Y]) => [id, group.encodePoint(Y)]));
  return { suite, t: published.t, n: verificationShares.size, groupPublicKey: group.encodePoint(published.groupPublicKey), verificationShares };
}
