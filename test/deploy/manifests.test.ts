import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { cpSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { multiaddr } from '@multiformats/multiaddr';
import { parse as parseYaml, parseAllDocuments } from 'yaml';
import { parseGatewayConfig } from '../../gateway/config.ts';
import { createGatewayMetrics } from '../../gateway/metrics.ts';
import { parseCommittee } from '../../net/committee.ts';
import { parseConfig } from '../../node/config.ts';
import { createNodeMetrics } from '../../node/metrics.ts';

/**
 * Static checks of everything under deploy/ that this machine cannot run (no Docker engine,
 * no cluster): the files are parsed and their security and wiring requirements checked, and
 * the configs they bake in are run through the real config and committee parsers.
 */
const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
const DEPLOY = join(ROOT, 'deploy');
const read = (path: string): string => readFileSync(join(DEPLOY, path), 'utf8');

/** Top-level directories of every module the image's entry point (scripts/tkms.ts) imports, statically or lazily. */
function imageSourceDirs(): string[] {
  const seen = new Set<string>();
  const visit = (file: string): void => {
    if (seen.has(file)) return;
    seen.add(file);
    const source = readFileSync(join(ROOT, file), 'utf8');
    for (const m of source.matchAll(/(?:^import [^;]*?from |import\()'(\.[^']+)'/gms)) visit(relative(ROOT, join(ROOT, dirname(file), m[1]!)));
  };
  visit('scripts/tkms.ts');
  return [...new Set([...seen].map((f) => f.split('/')[0]!))].sort();
}
const json = (path: string): any => JSON.parse(read(path));

// ---------------------------------------------------------------------------------------
// Dockerfile

interface Instruction {
  op: string;
  args: string;
}

/** Instructions of a Dockerfile, continuation lines joined, comments dropped, grouped by stage. */
function parseDockerfile(text: string): { stages: { from: string; name: string | undefined; body: Instruction[] }[]; preamble: Instruction[] } {
  const logical: string[] = [];
  let current = '';
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    if (current === '' && (line === '' || line.startsWith('#'))) continue;
    if (line.startsWith('#')) continue; // a comment inside a continued instruction
    if (line.endsWith('\\')) current += `${line.slice(0, -1)} `;
    else {
      logical.push(`${current}${line}`.trim());
      current = '';
    }
  }
  const stages: { from: string; name: string | undefined; body: Instruction[] }[] = [];
  const preamble: Instruction[] = [];
  for (const l of logical) {
    const m = /^([A-Za-z]+)\s+(.*)$/s.exec(l);
    assert.ok(m, `unparseable Dockerfile line: ${l}`);
    const ins = { op: m[1]!.toUpperCase(), args: m[2]!.trim() };
    if (ins.op === 'FROM') {
      const fm = /^(\S+)(?:\s+AS\s+(\S+))?$/i.exec(ins.args);
      assert.ok(fm, `bad FROM: ${ins.args}`);
      stages.push({ from: fm[1]!, name: fm[2], body: [] });
    } else if (stages.length === 0) preamble.push(ins);
    else stages[stages.length - 1]!.body.push(ins);
  }
  return { stages, preamble };
}

/** The metric names a Prometheus expression mentions (tkms_* only). */
function metricNames(expr: string): string[] {
  return [...new Set(expr.match(/\btkms_[a-z0-9_]+/g) ?? [])];
}

async function registeredMetricNames(): Promise<Set<string>> {
  const names = new Set<string>();
  for (const registry of [createNodeMetrics().registry, createGatewayMetrics().registry]) {
    for (const m of await registry.getMetricsAsJSON()) {
      names.add(m.name);
      if (String(m.type) === 'histogram') for (const suffix of ['_bucket', '_count', '_sum']) names.add(`${m.name}${suffix}`);
    }
  }
  return names;
}

describe('deploy: container image (deploy/docker)', () => {
  const dockerfile = parseDockerfile(read('docker/Dockerfile'));
  const final = dockerfile.stages[dockerfile.stages.length - 1]!;
  const all = (op: string, stage = final) => stage.body.filter((i) => i.op === op);

  it('is multi-stage: a build stage compiles, the runtime stage copies only the result', () => {
    assert.ok(dockerfile.stages.length >= 2, 'at least two stages');
    const build = dockerfile.stages.find((s) => s.name === 'build');
    assert.ok(build, 'a stage named build');
    assert.ok(all('RUN', build).some((r) => r.args.includes('npm ci')), 'build stage installs with npm ci (lockfile)');
    assert.ok(
      all('RUN', build).some((r) => r.args.includes('npx tsc -p deploy/docker/tsconfig.image.json') && r.args.includes('npm prune --omit=dev')),
      'build compiles the CLI and drops dev dependencies',
    );
    // The image compiles only the CLI's import closure (no tests, benchmarks or dev scripts).
    const tsconfig = json('docker/tsconfig.image.json');
    assert.deepEqual(tsconfig.files, ['../../scripts/tkms.ts']);
    assert.deepEqual(tsconfig.include, []);
    assert.equal(resolve(DEPLOY, 'docker', tsconfig.compilerOptions.outDir), join(ROOT, 'dist'));
    const copies = all('COPY');
    assert.ok(copies.some((c) => c.args.includes('--from=build') && c.args.includes('/src/dist')), 'runtime copies dist from the build stage');
    assert.ok(!all('RUN').some((r) => /npm (ci|install)/.test(r.args)), 'no package installation in the runtime image');
    assert.ok(!copies.some((c) => /\btest\b|\bbench\b/.test(c.args)), 'tests and benchmarks stay out of the image');
    for (const stage of dockerfile.stages) assert.ok(!all('ADD', stage).length, 'ADD is not used (no remote fetches)');
    // Every path the build stage copies from the context exists in the repository.
    for (const c of all('COPY', build)) {
      const parts = c.args.split(/\s+/).filter((p) => !p.startsWith('--'));
      for (const src of parts.slice(0, -1)) assert.ok(existsSync(join(ROOT, src)), `COPY source ${src} exists`);
    }
  });

  it('runs as a non-root user with the keystore on a volume and a /health healthcheck', () => {
    const user = all('USER');
    assert.equal(user.length, 1);
    const [uid, gid] = user[0]!.args.split(':');
    assert.ok(uid !== undefined && uid !== 'root' && uid !== '0' && /^[1-9][0-9]*$/.test(uid), `USER ${user[0]!.args} is a numeric non-root uid`);
    assert.ok(gid === undefined || (gid !== '0' && gid !== 'root'));
    // USER comes before the entrypoint, so the process never starts as root.
    const order = final.body.map((i) => i.op);
    assert.ok(order.indexOf('USER') < order.indexOf('ENTRYPOINT'));
    const volume = all('VOLUME');
    assert.equal(volume.length, 1);
    assert.deepEqual(JSON.parse(volume[0]!.args), ['/data']);
    const health = all('HEALTHCHECK');
    assert.equal(health.length, 1);
    assert.match(health[0]!.args, /--interval=\d+s/);
    assert.match(health[0]!.args, /CMD \[/);
    const env = all('ENV').map((e) => e.args).join(' ');
    assert.match(env, /TKMS_HEALTHCHECK_URL=http:\/\/127\.0\.0\.1:9100\/health/, 'the healthcheck probes the node /health by default');
    assert.match(health[0]!.args, /TKMS_HEALTHCHECK_URL/);
    assert.match(all('ENTRYPOINT')[0]!.args, /^\[.*dist\/scripts\/tkms\.js"\]$/, 'exec-form entrypoint running the compiled CLI');
    assert.deepEqual(JSON.parse(all('EXPOSE')[0]!.args.split(/\s+/).length ? `[${all('EXPOSE')[0]!.args.split(/\s+/).join(',')}]` : '[]'), [9000, 9100, 8080]);
    const runs = all('RUN').map((r) => r.args).join('\n');
    assert.match(runs, /chown tkms:tkms \/data/, '/data belongs to the runtime user (named volumes inherit it)');
    assert.match(runs, /chmod 0700 \/data/);
  });

  it('bakes in configs that put every writable path on /data and read the password from a secret file', () => {
    const env = { TKMS_ENABLE_TEST_FAULTS: undefined };
    const node = parseConfig(json('docker/node.json'), { baseDir: '/', env });
    for (const p of [node.identityFile, node.keystoreDir, node.stateDir]) assert.ok(p.startsWith('/data/'), `${p} is on the volume`);
    assert.equal(node.keystorePasswordFile, '/run/secrets/keystore_password');
    assert.equal(node.committeeFile, '/etc/tkms/committee/committee.json');
    assert.equal(node.admin.host, '127.0.0.1', 'the admin API stays on loopback in the container');
    assert.equal(node.http.port, 9100);
    assert.deepEqual(node.listen, ['/ip4/0.0.0.0/tcp/9000']);
    const gateway = parseGatewayConfig(json('docker/gateway.json'), '/', {});
    assert.ok(gateway.storeDir.startsWith('/data/'));
    assert.equal(gateway.committeeFile, node.committeeFile);
    assert.equal(gateway.listen.port, 8080);
    const envLines = all('ENV').map((e) => e.args).join(' ');
    assert.match(envLines, /TKMS_CONFIG=\/etc\/tkms\/node\.json/);
    assert.match(envLines, /TKMS_GATEWAY_CONFIG=\/etc\/tkms\/gateway\.json/);
  });

  it('the build context filter keeps what the build copies', () => {
    const ignore = read('docker/Dockerfile.dockerignore').split('\n').map((l) => l.trim()).filter((l) => l && !l.startsWith('#'));
    assert.equal(ignore[0], '**', 'deny by default');
    for (const dir of imageSourceDirs()) assert.ok(ignore.includes(`!${dir}/**`), `${dir} is sent to the builder`);
    assert.ok(!ignore.includes('!node_modules/**') && !ignore.includes('!.git/**'));    // A line twice is a merge leftover: harmless here, but it hides which list is the real one.
    assert.deepEqual(ignore.filter((line, i) => ignore.indexOf(line) !== i), [], 'no line twice');
  });

  it('the build stage copies every directory the CLI imports from (a new top-level directory is not forgotten)', () => {
    const build = dockerfile.stages.find((s) => s.name === 'build')!;
    const copied = new Set(all('COPY', build).map((c) => c.args.split(/\s+/)[0]!));
    for (const dir of imageSourceDirs()) assert.ok(copied.has(dir), `COPY ${dir} ./${dir} in the build stage`);
    const sources = all('COPY', build).map((c) => c.args);
    assert.deepEqual(sources.filter((line, i) => sources.indexOf(line) !== i), [], 'no COPY twice');
  });
});

describe('deploy: docker compose, 3-of-5 plus gateway (deploy/compose)', () => {
  const compose = parseYaml(read('compose/docker-compose.yml'), { merge: true }) as any;
  const committee = parseCommittee(json('compose/committee.example.json'));
  const nodes = [1, 2, 3, 4, 5].map((i) => [`node${i}`, compose.services[`node${i}`]] as const);

  it('has five nodes and a gateway, all hardened', () => {
    assert.deepEqual(Object.keys(compose.services).sort(), ['gateway', 'node1', 'node2', 'node3', 'node4', 'node5']);
    for (const [name, s] of Object.entries<any>(compose.services)) {
      assert.equal(s.read_only, true, `${name}: read-only root filesystem`);
      assert.match(String(s.user), /^[1-9][0-9]*:[1-9][0-9]*$/, `${name}: numeric non-root user`);
      assert.deepEqual(s.cap_drop, ['ALL'], `${name}: no capabilities`);
      assert.ok((s.security_opt as string[]).includes('no-new-privileges:true'), `${name}: no-new-privileges`);
      assert.ok((s.tmpfs as string[]).some((t) => t.startsWith('/tmp')), `${name}: /tmp on tmpfs`);
      assert.ok(s.healthcheck.test.join(' ').includes('/health'), `${name}: healthcheck on /health`);
      assert.ok(s.restart);
    }
  });

  it('gives each node its own data volume and keystore password secret', () => {
    const volumes = new Set<string>();
    const secrets = new Set<string>();
    for (const [name, s] of nodes) {
      assert.deepEqual(s.command, ['node', 'start']);
      const data = (s.volumes as string[]).find((v) => v.endsWith(':/data'));
      assert.ok(data, `${name} mounts /data`);
      const volume = data.split(':')[0]!;
      assert.ok(volume in compose.volumes, `${name}: volume ${volume} is declared`);
      volumes.add(volume);
      assert.ok((s.volumes as string[]).includes('./committee.json:/etc/tkms/committee/committee.json:ro'), `${name}: committee mounted read-only`);
      const secret = (s.secrets as { source: string; target: string }[])[0]!;
      assert.equal(secret.target, 'keystore_password', 'mounted where node.json reads it (/run/secrets/keystore_password)');
      assert.ok(secret.source in compose.secrets);
      secrets.add(secret.source);
    }
    assert.equal(volumes.size, 5);
    assert.equal(secrets.size, 5);
    assert.deepEqual(compose.services.gateway.command, ['gateway', 'start']);
    assert.ok((compose.services.gateway.volumes as string[]).some((v) => v.endsWith(':/data')));
    assert.ok(compose.services.gateway.healthcheck.test.join(' ').includes(':8080/health'));
  });

  it('the example committee is 3 of 5 and addresses each node at its compose IP', () => {
    assert.equal(committee.t, 3);
    assert.equal(committee.members.length, 5);
    const subnet = compose.networks.tkms.ipam.config[0].subnet as string;
    const prefix = subnet.replace(/\.0\/24$/, '.');
    for (const [i, [name, s]] of nodes.entries()) {
      const ip = s.networks.tkms.ipv4_address as string;
      assert.ok(ip.startsWith(prefix), `${name}: ${ip} in ${subnet}`);
      const member = committee.members.find((m) => m.id === i + 1)!;
      const parts = multiaddr(member.multiaddrs[0]!).getComponents();
      assert.equal(parts.find((c) => c.name === 'ip4')?.value, ip, `member ${i + 1} is ${name}`);
      assert.equal(parts.find((c) => c.name === 'tcp')?.value, '9000', 'the port node.json listens on');
    }
    assert.ok(read('compose/.gitignore').includes('secrets/'), 'password files are never committed');
  });
});

describe('deploy: Kubernetes (deploy/kubernetes)', () => {
  const kustomization = parseYaml(read('kubernetes/kustomization.yaml')) as any;
  const docs: any[] = (kustomization.resources as string[]).flatMap((file) =>
    parseAllDocuments(read(`kubernetes/${file}`)).map((d) => {
      assert.deepEqual(d.errors, [], `${file} parses`);
      return d.toJS();
    }),
  );
  const find = (kind: string, name: string): any => {
    const doc = docs.find((d) => d.kind === kind && d.metadata?.name === name);
    assert.ok(doc, `${kind}/${name} exists`);
    return doc;
  };
  const committee = parseCommittee(json('kubernetes/committee.json'));
  const sts = find('StatefulSet', 'tkms-node');
  const pod = sts.spec.template.spec;
  const node = pod.containers.find((c: any) => c.name === 'node');

  it('every manifest names its apiVersion, kind and metadata.name', () => {
    for (const d of docs) {
      assert.ok(typeof d.apiVersion === 'string' && typeof d.kind === 'string' && typeof d.metadata?.name === 'string', JSON.stringify(d).slice(0, 80));
    }
    assert.equal(kustomization.namespace, 'tkms');
  });

  it('StatefulSet: one PersistentVolumeClaim per node, parallel start, as many replicas as members', () => {
    assert.equal(sts.spec.replicas, committee.members.length);
    assert.equal(sts.spec.podManagementPolicy, 'Parallel', 'members wait for each other: ordered start would never get past the first');
    const claims = sts.spec.volumeClaimTemplates;
    assert.equal(claims.length, 1);
    assert.deepEqual(claims[0].spec.accessModes, ['ReadWriteOnce']);
    assert.ok(claims[0].spec.resources.requests.storage);
    assert.ok(node.volumeMounts.some((m: any) => m.name === claims[0].metadata.name && m.mountPath === '/data'));
    assert.deepEqual(sts.spec.selector.matchLabels, { 'app.kubernetes.io/name': 'tkms-node' });
    for (const [k, v] of Object.entries(sts.spec.selector.matchLabels)) assert.equal(sts.spec.template.metadata.labels[k], v);
    const init = pod.initContainers.find((c: any) => c.name === 'init-identity');
    assert.deepEqual(init.args, ['node', 'init', '--if-missing']);
    assert.deepEqual(node.args, ['node', 'start']);
  });

  it('headless Service publishes not-ready pods, and the committee uses its DNS names', () => {
    const svc = find('Service', sts.spec.serviceName);
    assert.equal(svc.spec.clusterIP, 'None');
    assert.equal(svc.spec.publishNotReadyAddresses, true, 'nodes become ready only once connected: their names must resolve before that');
    assert.deepEqual(svc.spec.selector, sts.spec.selector.matchLabels);
    const p2p = node.ports.find((p: any) => p.name === 'p2p');
    assert.ok(svc.spec.ports.some((p: any) => p.targetPort === 'p2p' && p.port === p2p.containerPort));
    committee.members.forEach((m, i) => {
      const parts = multiaddr(m.multiaddrs[0]!).getComponents();
      assert.equal(parts.find((c) => c.name === 'dns4')?.value, `${sts.metadata.name}-${i}.${svc.metadata.name}.${kustomization.namespace}.svc.cluster.local`);
      assert.equal(parts.find((c) => c.name === 'tcp')?.value, String(p2p.containerPort));
    });
  });

  it('readiness on /health, liveness that does not depend on peers, restricted security context', () => {
    assert.equal(node.readinessProbe.httpGet.path, '/health');
    assert.equal(node.readinessProbe.httpGet.port, 'http');
    assert.ok(node.livenessProbe.httpGet.path !== '/health', 'a node cut off from its peers must not be restarted in a loop');
    assert.ok(node.ports.some((p: any) => p.name === 'http' && p.containerPort === 9100));
    assert.equal(pod.securityContext.runAsNonRoot, true);
    assert.ok(pod.securityContext.runAsUser > 0);
    assert.ok(pod.securityContext.fsGroup > 0, 'the volume is writable by the user');
    assert.equal(pod.securityContext.seccompProfile.type, 'RuntimeDefault');
    assert.equal(pod.automountServiceAccountToken, false);
    for (const c of [...pod.containers, ...pod.initContainers]) {
      assert.equal(c.securityContext.readOnlyRootFilesystem, true, `${c.name}: read-only root`);
      assert.equal(c.securityContext.allowPrivilegeEscalation, false);
      assert.deepEqual(c.securityContext.capabilities.drop, ['ALL']);
      assert.ok(c.resources.limits.memory);
    }
  });

  it('the keystore password comes from a Secret mounted where the config reads it', () => {
    const gen = (kustomization.secretGenerator as any[]).find((s) => s.name === 'tkms-keystore-password');
    assert.ok(gen, 'a Secret for the keystore password');
    assert.equal(gen.options.disableNameSuffixHash, true, 'changing the password must not roll the pods by itself');
    assert.deepEqual(gen.files, ['password=keystore-password']);
    assert.ok(read('kubernetes/.gitignore').includes('keystore-password'));
    const vol = pod.volumes.find((v: any) => v.secret?.secretName === 'tkms-keystore-password');
    assert.ok(vol);
    const mount = node.volumeMounts.find((m: any) => m.name === vol.name);
    const config = parseConfig(json('kubernetes/config/node.json'), { baseDir: '/', env: {} });
    assert.equal(`${mount.mountPath}/${vol.secret.items[0].path}`, config.keystorePasswordFile);
    assert.equal(vol.secret.items[0].key, 'password');
    assert.equal(mount.readOnly, true);
    // The config and committee mounts match the paths in node.json.
    const env = Object.fromEntries(node.env.map((e: any) => [e.name, e.value]));
    const configMount = node.volumeMounts.find((m: any) => m.name === 'config');
    assert.ok((env.TKMS_CONFIG as string).startsWith(`${configMount.mountPath}/`));
    const committeeMount = node.volumeMounts.find((m: any) => m.name === 'committee');
    assert.equal(`${committeeMount.mountPath}/committee.json`, config.committeeFile);
  });

  it('PodDisruptionBudget keeps t nodes up', () => {
    const pdb = find('PodDisruptionBudget', 'tkms-node');
    assert.equal(pdb.apiVersion, 'policy/v1');
    assert.equal(pdb.spec.minAvailable, committee.t);
    assert.deepEqual(pdb.spec.selector.matchLabels, sts.spec.selector.matchLabels);
  });

  it('gateway: a Deployment with its store volume and a Service', () => {
    const dep = find('Deployment', 'tkms-gateway');
    const svc = find('Service', 'tkms-gateway');
    const c = dep.spec.template.spec.containers[0];
    assert.deepEqual(c.args, ['gateway', 'start']);
    assert.equal(dep.spec.replicas, 1);
    assert.equal(dep.spec.strategy.type, 'Recreate', 'one writer of the store at a time');
    assert.equal(c.readinessProbe.httpGet.path, '/health');
    assert.ok(c.livenessProbe);
    assert.equal(c.securityContext.readOnlyRootFilesystem, true);
    assert.equal(dep.spec.template.spec.securityContext.runAsNonRoot, true);
    assert.deepEqual(svc.spec.selector, dep.spec.selector.matchLabels);
    assert.ok(svc.spec.ports.some((p: any) => c.ports.some((cp: any) => cp.name === p.targetPort)));
    const claim = dep.spec.template.spec.volumes.find((v: any) => v.persistentVolumeClaim);
    find('PersistentVolumeClaim', claim.persistentVolumeClaim.claimName);
    const gateway = parseGatewayConfig(json('kubernetes/config/gateway.json'), '/', {});
    assert.ok(gateway.storeDir.startsWith('/data/'));
  });

  it('kustomize renders the whole set (when kubectl is installed)', function () {
    const probe = spawnSync('kubectl', ['version', '--client'], { encoding: 'utf8' });
    if (probe.status !== 0) {
      this.skip();
      return;
    }
    const dir = mkdtempSync(join(tmpdir(), 'tkms-kustomize-'));
    try {
      cpSync(join(DEPLOY, 'kubernetes'), dir, { recursive: true });
      writeFileSync(join(dir, 'keystore-password'), 'test-only');
      const out = spawnSync('kubectl', ['kustomize', dir], { encoding: 'utf8' });
      assert.equal(out.status, 0, out.stderr);
      const kinds = parseAllDocuments(out.stdout).map((d) => (d.toJS() as any).kind).sort();
      assert.deepEqual(kinds, ['ConfigMap', 'ConfigMap', 'Deployment', 'Namespace', 'PersistentVolumeClaim', 'PodDisruptionBudget', 'Secret', 'Service', 'Service', 'StatefulSet']);
      assert.match(out.stdout, /name: tkms-committee-[a-z0-9]+/, 'the committee ConfigMap name carries a content hash');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('deploy: systemd units (deploy/systemd)', () => {
  function parseUnit(text: string): Map<string, Map<string, string[]>> {
    const sections = new Map<string, Map<string, string[]>>();
    let current: Map<string, string[]> | undefined;
    for (const raw of text.split('\n')) {
      const line = raw.trim();
      if (line === '' || line.startsWith('#') || line.startsWith(';')) continue;
      const sec = /^\[(.+)\]$/.exec(line);
      if (sec) {
        current = new Map();
        sections.set(sec[1]!, current);
        continue;
      }
      const eq = line.indexOf('=');
      assert.ok(current && eq > 0, `bad unit line: ${line}`);
      const key = line.slice(0, eq);
      current.set(key, [...(current.get(key) ?? []), line.slice(eq + 1)]);
    }
    return sections;
  }

  for (const [file, command] of [
    ['tkms-node.service', 'node start'],
    ['tkms-gateway.service', 'gateway start'],
  ] as const) {
    it(`${file}: dedicated user and hardening options`, () => {
      const unit = parseUnit(read(`systemd/${file}`));
      const service = unit.get('Service')!;
      const one = (key: string): string | undefined => service.get(key)?.at(-1);
      assert.equal(one('User'), 'tkms');
      assert.equal(one('Group'), 'tkms');
      assert.equal(one('NoNewPrivileges'), 'yes');
      assert.equal(one('ProtectSystem'), 'strict');
      assert.equal(one('PrivateTmp'), 'yes');
      assert.equal(one('ProtectHome'), 'yes');
      assert.equal(one('PrivateDevices'), 'yes');
      assert.equal(one('CapabilityBoundingSet'), '', 'no capabilities at all');
      assert.equal(one('UMask'), '0077');
      assert.ok(one('StateDirectory'), 'the only writable place is its state directory');
      assert.equal(one('MemoryDenyWriteExecute'), undefined, 'would break the V8 JIT');
      assert.ok(one('ExecStart')!.endsWith(command));
      assert.ok(unit.get('Install')?.get('WantedBy'));
      assert.equal(one('Restart'), 'on-failure');
      if (file === 'tkms-node.service') {
        assert.match(one('LoadCredential')!, /^keystore-password:/, 'the password arrives as a credential');
        assert.ok(service.get('Environment')!.includes('TKMS_KEYSTORE_PASSWORD_FILE=%d/keystore-password'));
        assert.ok(!service.get('Environment')!.some((e) => e.startsWith('TKMS_KEYSTORE_PASSWORD=')), 'never the password itself in the environment');
      }
    });
  }

  it('the dedicated user is declared, and the example config keeps state under /var/lib/tkms', () => {
    assert.match(read('systemd/tkms.sysusers.conf'), /^u tkms - /m);
    const config = parseConfig(json('systemd/node.example.json'), { baseDir: '/etc/tkms', env: {} });
    for (const p of [config.identityFile, config.keystoreDir, config.stateDir]) assert.ok(p.startsWith('/var/lib/tkms/'), p);
  });

  it('systemd-analyze verify finds no unknown settings (when systemd-analyze is installed)', function () {
    const probe = spawnSync('systemd-analyze', ['--version'], { encoding: 'utf8' });
    if (probe.status !== 0) {
      this.skip();
      return;
    }
    const out = spawnSync('systemd-analyze', ['verify', join(DEPLOY, 'systemd/tkms-node.service'), join(DEPLOY, 'systemd/tkms-gateway.service')], { encoding: 'utf8' });
    const complaints = `${out.stdout}${out.stderr}`.split('\n').filter((l) => l.includes('tkms-') && /Unknown|Invalid|Failed to parse|bad|ignoring/i.test(l));
    assert.deepEqual(complaints, []);
  });
});

describe('deploy: metrics, Grafana dashboard and Prometheus rules', () => {
  /** The names operators' dashboards and alerts rely on: renaming one is a breaking change. */
  const STABLE = [
    'tkms_partial_requests_total',
    'tkms_partial_duration_seconds',
    'tkms_peers_connected',
    'tkms_keys_held',
    'tkms_dkg_sessions_total',
    'tkms_dkg_phase_duration_seconds',
    'tkms_dkg_duration_seconds',
    'tkms_acl_messages_total',
    'tkms_revocations_held',
    'tkms_replay_cache_entries',
    'tkms_build_info',
    'tkms_gateway_http_requests_total',
    'tkms_gateway_delegations_total',
    'tkms_gateway_delegation_fanout_seconds',
    'tkms_gateway_node_answers_total',
    'tkms_gateway_nodes_connected',
    'tkms_gateway_handles_stored',
    'tkms_gateway_build_info',
  ];

  it('node and gateway registries keep the stable metric names', async () => {
    const names = await registeredMetricNames();
    for (const n of STABLE) assert.ok(names.has(n), `${n} is registered`);
  });

  it('the dashboard is valid Grafana JSON and only queries metrics that exist', async () => {
    const names = await registeredMetricNames();
    const dash = json('grafana/tkms-dashboard.json');
    assert.equal(typeof dash.title, 'string');
    assert.equal(typeof dash.uid, 'string');
    assert.ok(dash.schemaVersion >= 30);
    const ids = new Set<number>();
    const used = new Set<string>();
    for (const panel of dash.panels) {
      assert.ok(!ids.has(panel.id), `panel id ${panel.id} is unique`);
      ids.add(panel.id);
      for (const k of ['x', 'y', 'w', 'h']) assert.equal(typeof panel.gridPos[k], 'number');
      if (panel.type === 'row') continue;
      assert.ok(panel.targets.length > 0, `${panel.title} has queries`);
      for (const t of panel.targets) {
        for (const m of metricNames(t.expr)) {
          assert.ok(names.has(m), `${panel.title}: ${m} is a real metric`);
          used.add(m.replace(/_(bucket|count|sum)$/, ''));
        }
      }
    }
    // The dashboard shows what the issue asks: requests by outcome, partial latency, peers, DKG rounds.
    for (const m of ['tkms_partial_requests_total', 'tkms_partial_duration_seconds', 'tkms_peers_connected', 'tkms_dkg_phase_duration_seconds', 'tkms_gateway_delegations_total', 'tkms_gateway_nodes_connected']) {
      assert.ok(used.has(m), `the dashboard shows ${m}`);
    }
    const jobs = dash.templating.list.filter((v: any) => v.name.endsWith('_job')).map((v: any) => v.query).sort();
    const prom = parseYaml(read('prometheus/prometheus.yml')) as any;
    assert.deepEqual(prom.scrape_configs.map((s: any) => s.job_name).sort(), jobs, 'dashboard defaults match the scrape jobs');
  });

  it('alert rules parse and only use metrics that exist', async () => {
    const names = await registeredMetricNames();
    const rules = parseYaml(read('prometheus/tkms-alerts.yml')) as any;
    const all = rules.groups.flatMap((g: any) => g.rules);
    assert.ok(all.length >= 4);
    for (const r of all) {
      assert.ok(r.alert && r.expr && r.annotations.summary);
      for (const m of metricNames(r.expr)) assert.ok(names.has(m), `${r.alert}: ${m}`);
    }
  });
});
