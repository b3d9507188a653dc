import assert from 'node:assert/strict';
import { Writable } from 'node:stream';
import { pino } from 'pino';
import { ANVIL_DEV_PRIVATE_KEY, startAnvil, type AnvilChain } from '../../chain/anvil.ts';
import { deployAcl } from '../../chain/deploy.ts';
import { FROM_BLOCK_ZERO_WARN_HEAD, openChainAcl } from '../../chain/open-chain-acl.ts';
import { isTkmsError } from '../../core/index.ts';
import { ServiceRunner } from '../../runtime/lifecycle.ts';

/**
 * openChainAcl, the one start-up path of the node's and the gateway's chain reader, against a real
 * Anvil: what it logs and refuses.
 */

const NO_METRICS = { call: () => undefined, head: () => undefined, cache: () => undefined };

/** A pino logger whose lines (parsed) land in `lines`. */
function capturingLogger(): { log: pino.Logger; lines: Record<string, unknown>[] } {
  const lines: Record<string, unknown>[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _encoding, done) {
      for (const line of chunk.toString('utf8').split('\n')) if (line.trim() !== '') lines.push(JSON.parse(line) as Record<string, unknown>);
      done();
    },
  });
  return { log: pino({ level: 'debug' }, sink), lines };
}

describe('openChainAcl (real anvil)', function () {
  this.timeout(60_000);
  let anvil: AnvilChain;
  let contract: string;

  before(async () => {
    anvil = await startAnvil();
    contract = (await deployAcl(anvil.url, ANVIL_DEV_PRIVATE_KEY)).address;
  });

  after(async () => {
    await anvil?.stop();
  });

  const chainConfig = (extra: Record<string, unknown> = {}) => ({ chainId: anvil.chainId, contract, rpcUrls: [anvil.url], rpcTimeoutMs: 2_000, pollIntervalMs: 200, maxHeadAgeSeconds: 86_400, ...extra });

  it('mode signed: no reader, and an acl.chain group present is named as ignored', async () => {
    const { log, lines } = capturingLogger();
    const services = new ServiceRunner({ log });
    const opened = await openChainAcl({ mode: 'signed', chain: chainConfig() }, { services, metrics: NO_METRICS, log });
    assert.deepEqual(opened, { mode: 'signed' });
    const warning = lines.find((l) => l.level === 40);
    assert.ok(warning, JSON.stringify(lines));
    assert.match(String(warning.msg), /acl\.chain is configured but acl\.mode is "signed": it is ignored/);
    const quiet = capturingLogger();
    await openChainAcl({ mode: 'signed' }, { services, metrics: NO_METRICS, log: quiet.log });
    assert.deepEqual(quiet.lines, []);
    await services.stop();
  });

  it('mode chain: a started reader, stopped with the services', async () => {
    const { log } = capturingLogger();
    const services = new ServiceRunner({ log });
    const opened = await openChainAcl({ mode: 'chain', chain: chainConfig() }, { services, metrics: NO_METRICS, log });
    assert.equal(opened.mode, 'chain');
    assert.ok((await opened.chain!.head()).block >= 1);
    await services.stop();
  });

  it('a start failure keeps its code, names chain and contract, and its log line carries the reason', async () => {
    const { log, lines } = capturingLogger();
    const services = new ServiceRunner({ log });
    const err = await openChainAcl({ mode: 'either', chain: chainConfig({ chainId: 1 }) }, { services, metrics: NO_METRICS, log }).then(
      () => undefined,
      (e: unknown) => e,
    );
    assert.ok(isTkmsError(err, 'chain_mismatch'), String(err));
    assert.match(err.message, new RegExp(`^on-chain ACL \\(acl\\.chain, chain 1, contract ${contract}\\): `));
    const line = lines.find((l) => l.level === 50 && String(l.msg).startsWith('cannot start the on-chain ACL'));
    assert.ok(line, JSON.stringify(lines));
    assert.equal((line.err as { type?: string; message?: string } | undefined)?.message !== undefined, true, 'the err field is logged');
    assert.ok(String(line.msg).length > 'cannot start the on-chain ACL (acl.chain): '.length + 20, `the reason is in the line: ${String(line.msg)}`);
    await services.stop();
  });

  it('a fromBlock past the chain head is refused at start (chain_mismatch), and the reader is stopped', async () => {
    const { log } = capturingLogger();
    const services = new ServiceRunner({ log });
    await assert.rejects(openChainAcl({ mode: 'chain', chain: chainConfig({ fromBlock: 1_000_000 }) }, { services, metrics: NO_METRICS, log }), (e: unknown) => {
      assert.ok(isTkmsError(e, 'chain_mismatch'), String(e));
      assert.match(e.message, /acl\.chain\.fromBlock is 1000000, past the chain's head \d+/);
      return true;
    });
    await services.stop();
  });

  it('a mode without acl.chain is refused (never a silent fall back to signed grants)', async () => {
    const { log } = capturingLogger();
    await assert.rejects(openChainAcl({ mode: 'chain' }, { services: new ServiceRunner({ log }), metrics: NO_METRICS, log }), /acl\.mode is chain but acl\.chain is not configured/);
  });

  it('fromBlock 0 on a chain whose head is large is warned about (threshold lowered for the test); a set fromBlock is not', async () => {
    const WARN_HEAD = 40;
    const open = async (fromBlock: number) => {
      const { log, lines } = capturingLogger();
      const services = new ServiceRunner({ log });
      await openChainAcl({ mode: 'chain', chain: chainConfig({ fromBlock }) }, { services, metrics: NO_METRICS, log, fromBlockZeroWarnHead: WARN_HEAD });
      await services.stop();
      return lines.filter((l) => l.level === 40).map((l) => String(l.msg));
    };
    assert.deepEqual(await open(0), [], 'a young chain: no warning');
    await fetch(anvil.url, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'anvil_mine', params: [`0x${(WARN_HEAD + 5).toString(16)}`, '0x1'] }) });
    const warnings = await open(0);
    assert.equal(warnings.length, 1, warnings.join('\n'));
    assert.match(warnings[0]!, /acl\.chain\.fromBlock is 0 on a chain at block \d+: grant listings scan every block from 0/);
    assert.deepEqual(await open(1), []);
    assert.ok(FROM_BLOCK_ZERO_WARN_HEAD >= 10_000, 'the real threshold leaves dev chains alone');
  });
});
