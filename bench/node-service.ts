import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { generateAccount } from '../client/account.ts';
import { recoverSharedSecret } from '../client/partials.ts';
import {
  decodeHex,
  decodePartialReply,
  decryptWithSharedSecretX,
  deriveHandle,
  encodePartialRequest,
  generateRsaKeyPair,
  newRequestId,
  publicKeyFromSecret,
  randomScalar,
  sealToHandle,
  setCurveBackend,
  signDelegation,
  signGrant,
  splitSecret,
  nobleCurveBackend,
  type CurveBackend,
  type HandleDescriptor,
  type RsaKeyPair,
} from '../core/index.ts';
import type { DkgPublicResult } from '../core/dkg/index.ts';
import { installNodeCryptoPaths, uninstallNodeCryptoPaths } from '../core/node-crypto.ts';
import { createLogger } from '../runtime/logger.ts';
import { RateLimiter } from '../runtime/rate-limit.ts';
import { createNodeMetrics } from '../node/metrics.ts';
import { PartialService, ShareBook } from '../node/partial.ts';
import { SpentRequestIds } from '../node/spent-request-ids.ts';
import { RevocationStore } from '../node/revocations.ts';

/**
 * The node's request path without the network: a real PartialService (spent-id log and
 * revocation store on disk, metrics, rate limiter) answering distinct signed requests from a
 * grantee, the costlier case (two signature recoveries). Requests are made beforehand, so
 * only the node's work is timed. One thread does all of it: ops/s here is partials/s per core.
 * The client figure is the mirror image: what one decrypt costs the client's CPU for t = 3
 * (sign, check the handle, unwrap and verify t partials, combine, AES-GCM).
 */
export interface ServiceResult {
  backend: string;
  requests: number;
  /** Sequential: wall time per request, so it includes waiting for each spent-id log write. */
  msPerPartial: number;
  /** 64 requests in flight at a time: wall-clock throughput of the one process. */
  concurrentPartialsPerSecond: number;
  /** CPU time (user + system, every thread of the process) per partial in the concurrent run. */
  cpuMsPerPartial: number;
  /** 1000 / cpuMsPerPartial: what one fully used core sustains. */
  partialsPerCoreSecond: number;
  clientDecryptMs: number;
}

const KEY_ID = 'bench';
const DEPLOYMENT = { committeeId: 'bench' };
const T = 3;
const N = 5;

interface Fixture {
  dir: string;
  shares: { id: number; value: bigint }[];
  result: DkgPublicResult;
  descriptor: HandleDescriptor;
  ciphertext: Uint8Array;
  handle: Uint8Array;
  owner: ReturnType<typeof generateAccount>;
  grantee: ReturnType<typeof generateAccount>;
  rsa: RsaKeyPair;
}

async function fixture(): Promise<Fixture> {
  const sk = randomScalar();
  const shares = splitSecret(sk, T, N);
  const verificationShares = Object.fromEntries(shares.map((s) => [String(s.id), Buffer.from(publicKeyFromSecret(s.value).toBytes(true)).toString('hex')]));
  const result = { keyId: KEY_ID, verificationShares } as unknown as DkgPublicResult;
  const owner = generateAccount();
  const grantee = generateAccount();
  const sealed = await sealToHandle({ publicKey: publicKeyFromSecret(sk), keyId: KEY_ID, owner: owner.addressBytes, plaintext: new TextEncoder().encode('bench payload') });
  const descriptor: HandleDescriptor = { keyId: KEY_ID, K: sealed.K, nonce: sealed.nonce, ciphertextHash: sealed.ciphertextHash, owner: owner.addressBytes, kProof: sealed.kProof };
  return {
    dir: await mkdtemp(join(tmpdir(), 'tkms-bench-node-')),
    shares,
    result,
    descriptor,
    ciphertext: sealed.ciphertext,
    handle: sealed.handle,
    owner,
    grantee,
    rsa: await generateRsaKeyPair(2048),
  };
}

function requests(f: Fixture, count: number): { bytes: Uint8Array; requestId: Uint8Array }[] {
  const now = Math.floor(Date.now() / 1000);
  const grant = signGrant(f.owner.secretKey, { handle: f.handle, grantee: f.grantee.addressBytes, notAfter: now + 3600, issuedAt: now }, DEPLOYMENT);
  const rsaSpki = decodeHex(f.rsa.publicKey.spkiHex);
  return Array.from({ length: count }, () => {
    const delegation = signDelegation(f.grantee.secretKey, {
      handle: f.handle,
      keyId: KEY_ID,
      requester: f.grantee.addressBytes,
      rsaSpki,
      notBefore: now,
      notAfter: now + 600,
      requestId: newRequestId(),
    }, DEPLOYMENT);
    return { bytes: encodePartialRequest({ delegation, descriptor: f.descriptor, grant }), requestId: delegation.requestId };
  });
}

async function service(f: Fixture, nodeId: number, tag: string): Promise<{ svc: PartialService; close: () => Promise<void> }> {
  const now = Math.floor(Date.now() / 1000);
  const spentIds = await SpentRequestIds.open(join(f.dir, `replay-${tag}-${nodeId}.log`), 30, now);
  const { store: revocations } = await RevocationStore.open(join(f.dir, `revocations-${tag}-${nodeId}.log`), DEPLOYMENT);
  const shares = new ShareBook(nodeId);
  shares.add(f.result, f.shares.find((s) => s.id === nodeId)!.value);
  const svc = new PartialService({
    deployment: DEPLOYMENT,
    shares,
    spentIds,
    revocations,
    metrics: createNodeMetrics(),
    log: createLogger('silent'),
    clockSkewSeconds: 30,
    limiter: new RateLimiter(1e9, 1e9),
    fault: undefined,
  });
  return { svc, close: () => Promise.all([spentIds.close(), revocations.close()]).then(() => undefined) };
}

export async function benchNodeService(backends: CurveBackend[], opts: { requests: number }): Promise<ServiceResult[]> {
  const f = await fixture();
  const results: ServiceResult[] = [];
  try {
    for (const backend of backends) {
      setCurveBackend(backend);
      // noble is ~20× slower; fewer requests keep its run short without changing the per-op figure.
      const count = backend.name === 'noble' ? Math.max(50, Math.floor(opts.requests / 20)) : opts.requests;
      const { svc, close } = await service(f, 1, backend.name);
      try {
        for (const r of requests(f, 20)) await svc.answerFrame(r.bytes); // warm-up
        const sequential = requests(f, count);
        let started = performance.now();
        for (const r of sequential) {
          const reply = decodePartialReply(await svc.answerFrame(r.bytes));
          if (!reply.ok) throw new Error(`bench request refused: ${reply.code} ${reply.message}`);
        }
        const msPerPartial = (performance.now() - started) / count;
        const concurrent = requests(f, count);
        started = performance.now();
        const cpuBefore = process.cpuUsage();
        for (let i = 0; i < concurrent.length; i += 64) await Promise.all(concurrent.slice(i, i + 64).map((r) => svc.answerFrame(r.bytes)));
        const cpu = process.cpuUsage(cpuBefore);
        const concurrentMs = (performance.now() - started) / count;
        const cpuMs = (cpu.user + cpu.system) / 1000 / count;

        results.push({
          backend: backend.name,
          requests: count,
          msPerPartial: round(msPerPartial),
          concurrentPartialsPerSecond: Math.round(1000 / concurrentMs),
          cpuMsPerPartial: round(cpuMs),
          partialsPerCoreSecond: Math.round(1000 / cpuMs),
          clientDecryptMs: round(await clientDecryptMs(f, backend.name === 'noble' ? 20 : 100, backend.name !== 'noble')),
        });
      } finally {
        await close();
      }
    }
  } finally {
    setCurveBackend(nobleCurveBackend);
    await rm(f.dir, { recursive: true, force: true });
  }
  return results;
}

/**
 * Client CPU per decrypt (t = 3): the partials come from three real PartialServices beforehand.
 * `nodePaths`: RSA and AES through node:crypto, as the CLI runs; without, WebCrypto as a browser does.
 */
async function clientDecryptMs(f: Fixture, rounds: number, nodePaths: boolean): Promise<number> {
  if (nodePaths) installNodeCryptoPaths();
  try {
    return await clientDecryptMsWith(f, rounds);
  } finally {
    uninstallNodeCryptoPaths();
  }
}

async function clientDecryptMsWith(f: Fixture, rounds: number): Promise<number> {
  const nodes = await Promise.all([1, 2, 3].map((id) => service(f, id, `client-${Math.random()}`)));
  try {
    const verificationShares = new Map(Object.entries(f.result.verificationShares).map(([id, hex]) => [Number(id), decodeHex(hex, { length: 33 })]));
    const prepared = [];
    for (const r of requests(f, rounds)) {
      const partials = [];
      for (const node of nodes) {
        const reply = decodePartialReply(await node.svc.answerFrame(r.bytes));
        if (!reply.ok) throw new Error(`bench request refused: ${reply.code}`);
        partials.push({ nodeId: reply.nodeId, wrapped: reply.wrapped, proof: reply.proof });
      }
      prepared.push({ requestId: r.requestId, partials });
    }
    const now = Math.floor(Date.now() / 1000);
    const rsaSpki = decodeHex(f.rsa.publicKey.spkiHex);
    const started = performance.now();
    for (const p of prepared) {
      // What TkmsClient.decrypt does besides waiting for the network.
      signDelegation(f.grantee.secretKey, { handle: f.handle, keyId: KEY_ID, requester: f.grantee.addressBytes, rsaSpki, notBefore: now, notAfter: now + 600, requestId: p.requestId }, DEPLOYMENT);
      deriveHandle({ keyId: KEY_ID, K: f.descriptor.K, nonce: f.descriptor.nonce, ciphertext: f.ciphertext, owner: f.descriptor.owner });
      const recovered = await recoverSharedSecret({
        keyId: KEY_ID,
        requestId: p.requestId,
        K: f.descriptor.K,
        t: T,
        verificationShares,
        partials: p.partials,
        rsaPrivateKey: f.rsa.privateKey,
      });
      await decryptWithSharedSecretX(recovered.sharedSecretX, f.descriptor.nonce, f.ciphertext);
    }
    return (performance.now() - started) / prepared.length;
  } finally {
    await Promise.all(nodes.map((n) => n.close()));
  }
}

function round(ms: number): number {
  return Number(ms.toFixed(3));
}
