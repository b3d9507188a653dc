import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { statfs } from 'node:fs/promises';
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { isTkmsError } from '../../core/index.ts';
import { GatewayStore, type StoredHandle } from '../../gateway/store.ts';
import { closeServer, startHttpServer } from '../../net/http.ts';
import { DEFAULT_HTTP_LIMITS } from '../../net/http-limits.ts';
import { createLogger } from '../../runtime/logger.ts';
import { makeTempDir, removeDir } from '../support/processes.ts';
import { postHead, rawConnection, sleep, type RawConnection } from '../support/http-attack.ts';

/**
 * Bytes a request keeps alive after it has been read: its body (and decoded copies) through
 * the handler's waits, and the gateway store's write queue. The HTTP listener and the store are
 * the real ones, over real sockets and a real directory.
 */
const MiB = 1024 * 1024;

function handleFor(i: number, ciphertext: Uint8Array): StoredHandle {
  const hex = (n: number, bytes: number): string => n.toString(16).padStart(bytes * 2, '0');
  return {
    handle: `0x${hex(i, 32)}`,
    keyId: 'default',
    K: `0x02${hex(i, 32)}`,
    nonce: `0x${hex(i, 12)}`,
    ciphertextHash: `0x${createHash('sha256').update(ciphertext).digest('hex')}`,
    owner: `0x${hex(i, 20)}`,
    kProof: `0x${hex(i, 64)}`,
    createdAt: 1_700_000_000_000,
  };
}

describe('security: bytes held after a request is read', function () {
  this.timeout(60_000);

  describe('attack: large bodies parked behind a slow handler (node fan-out, store queue)', () => {
    let server: Server | undefined;
    let url = '';
    const waiting: (() => void)[] = [];
    /** Handlers waiting (a function: the count changes under the test's awaits). */
    const parked = (): number => waiting.length;
    const open: RawConnection[] = [];
    before(async () => {
      const limits = { ...DEFAULT_HTTP_LIMITS, maxBodyBytesInFlight: 8 * MiB, maxBodyBytesInFlightPerIp: 2 * MiB };
      server = await startHttpServer(
        '127.0.0.1',
        0,
        [{ method: 'POST', path: '/slow', handler: () => new Promise((resolve) => waiting.push(() => resolve({ status: 200, json: { ok: true } }))) }],
        createLogger('silent'),
        'test',
        { maxBodyBytes: 2 * MiB, limits },
      );
      url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    });
    after(async () => {
      for (const c of open) c.socket.destroy();
      for (const w of waiting.splice(0)) w();
      if (server) await closeServer(server);
    });

    it('keeps a body\'s reservation until its answer is sent: a second body past the address\'s share is refused meanwhile', async () => {
      const body = `"${'a'.repeat(1.5 * MiB - 2)}"`;
      const first = rawConnection(url, '127.0.0.5', postHead('/slow', body.length) + body);
      open.push(first);
      // The first body is read whole; its handler waits.
      const started = Date.now();
      while (parked() === 0 && Date.now() - started < 10_000) await sleep(20);
      assert.equal(parked(), 1, 'the first body reached its handler');
      // 1.5 MiB of the 2 MiB share are still held while the handler waits: another 1.5 MiB body is refused unread.
      const second = rawConnection(url, '127.0.0.5', postHead('/slow', body.length));
      open.push(second);
      const refused = await Promise.race([second.outcome, sleep(10_000).then(() => undefined)]);
      assert.equal(refused?.status, 429, `second body: ${JSON.stringify(refused)}`);
      assert.match(refused!.text, /body_bytes_in_flight_per_ip/);
      // Once the first answer is sent, the share is free again.
      waiting.shift()!();
      assert.equal((await first.outcome).status, 200);
      await sleep(100);
      const third = rawConnection(url, '127.0.0.5', postHead('/slow', body.length) + body);
      open.push(third);
      const s2 = Date.now();
      while (parked() === 0 && Date.now() - s2 < 10_000) await sleep(20);
      assert.equal(parked(), 1, 'the third body was admitted after the first answer');
      waiting.shift()!();
      assert.equal((await third.outcome).status, 200);
    });
  });

  describe('attack: flooding the gateway store\'s write queue with large handles', () => {
    let dir: string | undefined;
    after(() => removeDir(dir));

    it('refuses handles past the queue\'s byte bound (503, unavailable) while a revocation still gets in', async () => {
      dir = await makeTempDir('tkms-sec-queue');
      const store = await GatewayStore.open(dir, { limits: { writeQueueBytes: 4 * MiB, handles: { perOwner: 1_000, perOwnerBytes: 2 ** 40, maxBytes: 2 ** 40, minFreeDiskBytes: 0 } } });
      try {
        const ct = new Uint8Array(MiB).fill(7);
        // All queued in one synchronous run: nothing is written before the last is offered.
        const puts = Array.from({ length: 12 }, (_, i) => store.putHandle(handleFor(i + 1, ct), ct).then(() => 'stored', (e: unknown) => e));
        const revocation = store.putRevocation({ handle: handleFor(1, ct).handle, grantee: `0x${'b'.repeat(40)}`, revokedAt: Math.floor(Date.now() / 1000), signature: 'sig' });
        const outcomes = await Promise.all(puts);
        const refused = outcomes.filter((o) => o !== 'stored');
        assert.ok(refused.length >= 12 - 4, `${refused.length} of 12 refused`);
        for (const e of refused) assert.ok(isTkmsError(e, 'unavailable') && e.details?.reason === 'store_queue_full', String(e));
        assert.equal(await revocation, true);
        // The queue empties: handles are accepted again.
        assert.deepEqual(await store.putHandle(handleFor(99, ct), ct), { created: true });
      } finally {
        await store.close();
      }
    });
  });

  describe('attack: filling the disk until the gateway can no longer write revocations', () => {
    let dir: string | undefined;
    after(() => removeDir(dir));

    it('refuses new handles once free space falls to the reserve (503); grants and revocations are still written', async () => {
      dir = await makeTempDir('tkms-sec-disk');
      // Free space between half the reserve and the reserve: the store behaves as on a disk inside its reserve.
      const s = await statfs(dir);
      const free = s.bavail * s.bsize;
      const store = await GatewayStore.open(dir, { limits: { handles: { perOwner: 1_000, perOwnerBytes: 2 ** 40, maxBytes: 2 ** 40, minFreeDiskBytes: Math.floor(free * 1.5) } } });
      try {
        const ct = new Uint8Array(64).fill(1);
        const e = await store.putHandle(handleFor(1, ct), ct).then(() => undefined, (err: unknown) => err);
        assert.ok(isTkmsError(e, 'unavailable') && e.details?.reason === 'disk_reserve', String(e));
        const now = Math.floor(Date.now() / 1000);
        const h = handleFor(1, ct).handle;
        assert.equal(await store.putGrant({ handle: h, grantee: `0x${'c'.repeat(40)}`, notAfter: now + 3600, issuedAt: now, signature: 'g' }), true);
        assert.equal(await store.putRevocation({ handle: h, grantee: `0x${'c'.repeat(40)}`, revokedAt: now, signature: 'r' }), true);
        assert.equal(store.stats().handles, 0);
      } finally {
        await store.close();
      }
    });

    it('refuses new grants and re-grants once free space falls under half the reserve (503); revocations are still written', async () => {
      dir ??= await makeTempDir('tkms-sec-disk');
      const ct = new Uint8Array(64).fill(1);
      const h = handleFor(1, ct).handle;
      const now = Math.floor(Date.now() / 1000);
      const grantee = `0x${'d'.repeat(40)}`;
      // A grant written while the disk had room, re-granted later: each re-grant appends a record.
      const roomy = await GatewayStore.open(dir, { limits: { handles: { perOwner: 1_000, perOwnerBytes: 2 ** 40, maxBytes: 2 ** 40, minFreeDiskBytes: 0 } } });
      try {
        assert.equal(await roomy.putGrant({ handle: h, grantee, notAfter: now + 3600, issuedAt: now - 10, signature: 'g' }), true);
      } finally {
        await roomy.close();
      }
      // A reserve larger than twice any disk here: the store behaves as on a disk past half its reserve.
      const store = await GatewayStore.open(dir, { limits: { handles: { perOwner: 1_000, perOwnerBytes: 2 ** 40, maxBytes: 2 ** 40, minFreeDiskBytes: 2 ** 50 } } });
      try {
        const logBytes = store.stats().logBytes;
        for (const [g, issuedAt] of [[`0x${'e'.repeat(40)}`, now], [grantee, now]] as const) {
          const e = await store.putGrant({ handle: h, grantee: g, notAfter: now + 3600, issuedAt, signature: 'g' }).then(() => undefined, (err: unknown) => err);
          assert.ok(isTkmsError(e, 'unavailable') && e.details?.reason === 'disk_reserve', `grant to ${g}: ${String(e)}`);
        }
        assert.equal(store.stats().logBytes, logBytes, 'a refused grant wrote nothing');
        assert.equal(store.getGrant(h, grantee)?.issuedAt, now - 10, 'the earlier grant is kept');
        assert.equal(await store.putRevocation({ handle: h, grantee, revokedAt: now, signature: 'r' }), true);
        assert.equal(store.getRevocation(h, grantee)?.revokedAt, now);
      } finally {
        await store.close();
      }
    });
  });
});
