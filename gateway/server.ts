import { readFile } from 'node:fs/promises';
import type { Server } from 'node:http';
import { TkmsError } from '../core/index.ts';
import { loadCommitteeFile } from '../net/committee.ts';
import { HttpService } from '../net/http.ts';
import { createLogger, type Logger } from '../runtime/logger.ts';
import { gatewayRoutes, handleResponseBytes } from './api.ts';
import type { GatewayConfig } from './config.ts';
import { SignCoordinator } from './sign-coordinator.ts';
import { KeyDirectory } from './keys.ts';
import { createGatewayMetrics } from './metrics.ts';
import { NodePool } from './node-pool.ts';
import { RateLimiter } from '../runtime/rate-limit.ts';
import { installServerCurveBackend } from '../runtime/curve-setup.ts';
import { GatewayStore, MAX_CIPHERTEXT_BYTES } from './store.ts';
import { isLoopbackHost } from '../net/http-address.ts';
import { loadOrCreateIdentityFile } from '../node/identity.ts';
import { ServiceRunner, type Service } from '../runtime/lifecycle.ts';
import type { RefusalReason } from '../net/http-limits.ts';
import { openChainAcl } from '../chain/open-chain-acl.ts';
import { keyBookOptions } from '../config/key-registry.ts';
import { parseStoredKeyPolicy } from '../core/keys/policy.ts';
import { GatewayKeyRegistry } from './key-registry.ts';

export interface RunningGateway {
  server: Server;
  url: string;
  log: Logger;
  stop(): Promise<void>;
}

/** JSON envelope on top of the largest plaintext, as base64 (4/3) plus the signed request. */
function bodyLimit(maxPlaintextBytes: number): number {
  return Math.ceil((maxPlaintextBytes + 16) / 3) * 4 + 16 * 1024;
}

async function readTlsFiles(tls: GatewayConfig['tls']): Promise<{ cert: Buffer; key: Buffer } | undefined> {
  if (tls === undefined) return undefined;
  const read = async (file: string, what: string): Promise<Buffer> => {
    try {
      return await readFile(file);
    } catch (e) {
      throw new TkmsError('bad_request', `cannot read the TLS ${what} file ${file}: ${(e as NodeJS.ErrnoException).code ?? 'error'}`);
    }
  };
  return { cert: await read(tls.certFile, 'certificate'), key: await read(tls.keyFile, 'key') };
}

const KEY_REFRESH_INTERVAL_MS = 30_000;
/** How often the gateway reads the key changes its members hold that it lacks. */
const KEY_CHANGE_CATCH_UP_INTERVAL_MS = 30_000;

/**
 * Starts the gateway: store, node pool (libp2p), then the HTTP listener, each a service of one
 * runner, so a failure half-way stops what had started and stop() closes all in reverse.
 */
export async function startGateway(config: GatewayConfig): Promise<RunningGateway> {
  const log = createLogger(config.logLevel, { component: 'gateway' });
  const tls = await readTlsFiles(config.tls);
  const curveBackendName = installServerCurveBackend(log);
  const committee = await loadCommitteeFile(config.committeeFile);
  const identity = config.identityFile === undefined ? undefined : await loadOrCreateIdentityFile(config.identityFile);
  if (identity === undefined) log.warn('no identityFile: a new libp2p identity for this run; nodes will refuse revocations pushed by it');
  else log.info({ peerId: identity.identity.peerId, created: identity.created }, 'gateway identity (list it in every node\'s gatewayPeerIds)');
  const services = new ServiceRunner({ log });
  return services.startOrStop(async () => {
    const store = await services.open(
      'store',
      () =>
        GatewayStore.open(config.storeDir, {
          onWarning: (msg) => log.warn({ store: config.storeDir }, msg),
          limits: { maxGrantLifetimeSeconds: config.maxGrantLifetimeSeconds, clockSkewSeconds: config.clockSkewSeconds, grants: config.grants, revocations: config.revocations, handles: config.handles, writeQueueBytes: config.storeWriteQueueBytes },
        }),
      (s) => s.close(),
    );
    const metrics = await services.open('metrics', () => createGatewayMetrics(), (m) => m.registry.clear());
    const pool = await services.open('node pool', () => NodePool.start(committee, log, { partialFramesInFlight: config.partialFramesInFlight, privateKey: identity?.identity.privateKey }), (p) => p.stop());
    const keys = new KeyDirectory(committee, pool, log, metrics.keyDisagreements, metrics.committeeEpoch);
    // Learn the keys early; requests refresh again on a miss, and a periodic refresh notices members
    // that later disagree on a published key (it is then withdrawn).
    await services.start(
      every('key refresh', KEY_REFRESH_INTERVAL_MS, () => keys.refresh().catch(() => undefined), () => keys.refresh(true).catch(() => undefined)),
    );
    // The committee's deployment names the key changes' signatures, as every node checks them.
    const keyRegistry = await services.open(
      'key registry',
      () => GatewayKeyRegistry.open({ storeDir: config.storeDir, book: { ...keyBookOptions(config.keys, { committeeId: committee.committeeId }, parseStoredKeyPolicy), materialIds: () => keys.list().map((k) => k.result.keyId) }, members: pool, log, timeoutMs: config.partialTimeoutMs }),
      (r) => r.close(),
    );
    const catchUp = (): Promise<void> => keyRegistry.catchUp().catch((e: unknown) => log.warn({ err: e instanceof Error ? e.message : String(e) }, 'key change catch-up failed'));
    await services.start(every('key change catch-up', KEY_CHANGE_CATCH_UP_INTERVAL_MS, catchUp, catchUp));
    await services.start(every('node gauge', 1_000, () => metrics.nodesConnected.set(pool.connectedMembers().length)));
    // Before the listener: a gateway that cannot read its chain refuses to start (fail closed).
    const { chain: chainAcl } = await openChainAcl(config.acl, { services, metrics: metrics.chain.sink, log });
    const limiter = new RateLimiter(config.rateLimit.perMinute, config.rateLimit.burst);
    // Per IP: ten accounts' worth, so a NAT of honest users is not starved but one host cannot flood signature checks.
    const ipLimiter = new RateLimiter(config.rateLimit.perMinute * 10, config.rateLimit.burst * 10);
    const signer = new SignCoordinator({ transport: pool, log, timeoutMs: config.partialTimeoutMs });
    const routes = gatewayRoutes({ config, store, keys, pool, limiter, ipLimiter, metrics, keyRegistry, signer, ...(chainAcl ? { chainAcl } : {}) });
    metrics.handlesStored.set(store.stats().handles);
    const maxBodyBytes = bodyLimit(config.maxPlaintextBytes);
    const httpOptions = {
      maxBodyBytes,
      // One largest body (and answer) must always fit in an address's share, or that address could never send (or read) it.
      limits: {
        ...config.httpLimits,
        maxBodyBytesInFlightPerIp: Math.max(config.httpLimits.maxBodyBytesInFlightPerIp, maxBodyBytes),
        maxResponseBytesInFlightPerIp: Math.max(config.httpLimits.maxResponseBytesInFlightPerIp, handleResponseBytes(MAX_CIPHERTEXT_BYTES)),
      },
      onRefused: (reason: RefusalReason) => metrics.httpRefused.inc({ reason }),
      ...(tls ? { tls } : {}),
      cors: config.cors,
      basePath: config.basePath,
      onResponse: (route: string, method: string, status: number, seconds: number) => {
        metrics.httpRequests.inc({ route, method, status: String(status) });
        metrics.httpSeconds.observe({ route }, seconds);
      },
    };
    const http = new HttpService(config.listen, routes, log, 'gateway', httpOptions);
    await services.start({
      name: 'http',
      start: async () => {
        try {
          await http.start();
        } catch (e) {
          throw new TkmsError('unavailable', `cannot listen on ${config.listen.host}:${config.listen.port}: ${(e as NodeJS.ErrnoException).code ?? 'error'}`);
        }
      },
      stop: () => http.stop(),
    });
    const server = http.server;
    const port = http.port;
    const url = `${tls ? 'https' : 'http'}://${config.listen.host.includes(':') ? `[${config.listen.host}]` : config.listen.host}:${port}`;
    if (tls === undefined && !isLoopbackHost(config.listen.host)) log.warn({ url }, 'serving plain HTTP on a non-loopback address: put a TLS-terminating proxy in front, or set tlsCertFile and tlsKeyFile');
    log.info({ url, basePath: config.basePath, committeeId: committee.committeeId, t: committee.t, n: committee.members.length, curveBackend: curveBackendName, aclMode: config.acl.mode }, 'tkms gateway started');
    const stop = async (): Promise<void> => {
      log.info('stopping');
      await services.stop();
    };
    return { server, url, log, stop };
  });
}

/** A periodic task as a service: `first` runs at start, `task` every `intervalMs` until stopped. */
function every(name: string, intervalMs: number, task: () => unknown, first?: () => unknown): Service {
  let timer: NodeJS.Timeout | undefined;
  return {
    name,
    start() {
      first?.();
      timer = setInterval(task, intervalMs);
      timer.unref();
    },
    stop() {
      clearInterval(timer);
    },
  };
}
