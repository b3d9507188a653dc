import { readFile } from 'node:fs/promises';
import type { Server } from 'node:http';
import { TkmsError } from '../core/index.ts';
import { loadCommitteeFile } from '../net/committee.ts';
import { HttpService } from '../net/http.ts';
import { createLogger, type Logger } from '../net/logger.ts';
import { gatewayRoutes, handleResponseBytes } from './api.ts';
import type { GatewayConfig } from './config.ts';
import { KeyDirectory } from './keys.ts';
import { createGatewayMetrics } from './metrics.ts';
import { NodePool } from './node-pool.ts';
import { RateLimiter } from '../net/rate-limit.ts';
import { installServerCurveBackend } from '../net/curve-setup.ts';
import { GatewayStore, MAX_CIPHERTEXT_BYTES } from './store.ts';
import { isLoopbackHost } from '../net/http-address.ts';
import { loadOrCreateIdentityFile } from '../node/identity.ts';

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

export async function startGateway(config: GatewayConfig): Promise<RunningGateway> {
  const log = createLogger(config.logLevel, { component: 'gateway' });
  const tls = await readTlsFiles(config.tls);
  const curveBackendName = installServerCurveBackend(log);
  const committee = await loadCommitteeFile(config.committeeFile);
  const identity = config.identityFile === undefined ? undefined : await loadOrCreateIdentityFile(config.identityFile);
  if (identity === undefined) log.warn('no identityFile: a new libp2p identity for this run; nodes will refuse revocations pushed by it');
  else log.info({ peerId: identity.identity.peerId, created: identity.created }, 'gateway identity (list it in every node\'s gatewayPeerIds)');
  const store = await GatewayStore.open(config.storeDir, {
    onWarning: (msg) => log.warn({ store: config.storeDir }, msg),
    limits: { maxGrantLifetimeSeconds: config.maxGrantLifetimeSeconds, clockSkewSeconds: config.clockSkewSeconds, grants: config.grants, revocations: config.revocations, handles: config.handles, writeQueueBytes: config.storeWriteQueueBytes },
  });
  const metrics = createGatewayMetrics();
  let pool: NodePool;
  try {
    pool = await NodePool.start(committee, log, { partialFramesInFlight: config.partialFramesInFlight, privateKey: identity?.identity.privateKey });
  } catch (e) {
    await store.close();
    throw e;
  }
  const keys = new KeyDirectory(committee, pool, log, metrics.keyDisagreements);
  const limiter = new RateLimiter(config.rateLimit.perMinute, config.rateLimit.burst);
  // Per IP: ten accounts' worth, so a NAT of honest users is not starved but one host cannot flood signature checks.
  const ipLimiter = new RateLimiter(config.rateLimit.perMinute * 10, config.rateLimit.burst * 10);
  const routes = gatewayRoutes({ config, store, keys, pool, limiter, ipLimiter, metrics });
  metrics.handlesStored.set(store.stats().handles);
  const gauge = setInterval(() => metrics.nodesConnected.set(pool.connectedMembers().length), 1_000);
  gauge.unref();
  const maxBodyBytes = bodyLimit(config.maxPlaintextBytes);
  const http = new HttpService(config.listen, routes, log, 'gateway', {
    maxBodyBytes,
    // One largest body (and answer) must always fit in an address's share, or that address could never send (or read) it.
    limits: {
      ...config.httpLimits,
      maxBodyBytesInFlightPerIp: Math.max(config.httpLimits.maxBodyBytesInFlightPerIp, maxBodyBytes),
      maxResponseBytesInFlightPerIp: Math.max(config.httpLimits.maxResponseBytesInFlightPerIp, handleResponseBytes(MAX_CIPHERTEXT_BYTES)),
    },
    onRefused: (reason) => metrics.httpRefused.inc({ reason }),
    ...(tls ? { tls } : {}),
    cors: config.cors,
    basePath: config.basePath,
    onResponse: (route, method, status, seconds) => {
      metrics.httpRequests.inc({ route, method, status: String(status) });
      metrics.httpSeconds.observe({ route }, seconds);
    },
  });
  try {
    await http.start();
  } catch (e) {
    clearInterval(gauge);
    await pool.stop();
    await store.close();
    throw new TkmsError('unavailable', `cannot listen on ${config.listen.host}:${config.listen.port}: ${(e as NodeJS.ErrnoException).code ?? 'error'}`);
  }
  const server = http.server;
  const port = http.port;
  const url = `${tls ? 'https' : 'http'}://${config.listen.host.includes(':') ? `[${config.listen.host}]` : config.listen.host}:${port}`;
  // Learn the keys early; requests refresh again on a miss, and a periodic refresh notices members
  // that later disagree on a published key (it is then withdrawn).
  keys.refresh(true).catch(() => undefined);
  const keyRefresh = setInterval(() => keys.refresh().catch(() => undefined), KEY_REFRESH_INTERVAL_MS);
  keyRefresh.unref();
  if (tls === undefined && !isLoopbackHost(config.listen.host)) log.warn({ url }, 'serving plain HTTP on a non-loopback address: put a TLS-terminating proxy in front, or set tlsCertFile and tlsKeyFile');
  log.info({ url, committeeId: committee.committeeId, t: committee.t, n: committee.members.length, curveBackend: curveBackendName }, 'tkms gateway started');

  let stopping: Promise<void> | undefined;
  const stop = (): Promise<void> => {
    stopping ??= (async () => {
      log.info('stopping');
      clearInterval(gauge);
      clearInterval(keyRefresh);
      await http.stop();
      await pool.stop();
      await store.close();
    })();
    return stopping;
  };
  return { server, url, log, stop };
}
