import './core/polyfills.ts';
import { getJson, makeTempDir, NodeCluster, removeDir, waitFor } from './test/support/processes.ts';
const n = Number(process.argv[2] ?? 5); const t = Math.floor(2*n/3)+1;
const root = await makeTempDir('diag');
const c = await NodeCluster.prepare({ n, t, rootDir: root, phaseTimeoutMs: 10000, logLevel: 'info' });
await c.startAll();
await Promise.all(c.nodes.map(x => waitFor('peers', async () => (await getJson(`${x.httpUrl}/health`)).json.peersConnected === n-1 ? true : undefined, {timeoutMs: 60000})));
for (const k of ['k1','k2','k3']) {
const t0 = Date.now();
await getJson(`${c.node(1).adminUrl}/admin/dkg`, { method: 'POST', body: JSON.stringify({ keyId: k }) });
await Promise.all(c.nodes.map(x => waitFor('done', async () => (await getJson(`${x.adminUrl}/admin/dkg/${k}`)).json.status === 'done' ? true : undefined, {timeoutMs: 60000, intervalMs: 20})));
console.log('wall', k, Date.now() - t0);
}
for (const x of c.nodes.slice(0,3)) for (const l of x.process!.logLines()) if (false) console.log(x.id, l.time, l.msg, JSON.stringify(l).slice(0,400));
await c.stopAll(); await removeDir(root);
