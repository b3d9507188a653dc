import assert from 'node:assert/strict';
import { open, type FileHandle } from 'node:fs/promises';
import { createServer, type AddressInfo, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { defineService, ServiceRunner, StopTimeoutError, type LifecycleLog, type Service } from '../../runtime/lifecycle.ts';

/** Ports the listeners took, by name (a closed server no longer reports its address). */
const portOf = new Map<string, number>();

/** Real small services: a TCP listener on loopback and an open file, each recording its events. */
function listener(name: string, events: string[]): Service & { readonly value: Server } {
  return defineService(
    name,
    async () => {
      const server = createServer();
      await new Promise<void>((resolve, reject) => server.once('error', reject).listen(0, '127.0.0.1', resolve));
      portOf.set(name, (server.address() as AddressInfo).port);
      events.push(`start ${name}`);
      return server;
    },
    async (server) => {
      await new Promise<void>((resolve, reject) => server.close((e) => (e ? reject(e) : resolve())));
      events.push(`stop ${name}`);
    },
  );
}

function openFile(name: string, events: string[]): Service & { readonly value: FileHandle } {
  return defineService(
    name,
    async () => {
      const handle = await open(join(tmpdir(), `tkms-lifecycle-${process.pid}-${name}`), 'w');
      events.push(`start ${name}`);
      return handle;
    },
    async (handle) => {
      await handle.close();
      events.push(`stop ${name}`);
    },
  );
}

function failing(name: string, events: string[]): Service {
  return {
    name,
    start() {
      events.push(`start ${name}`);
      throw new Error(`${name} cannot start`);
    },
    stop() {
      events.push(`stop ${name}`);
    },
  };
}

function recordingLog(): LifecycleLog & { lines: string[] } {
  const lines: string[] = [];
  return {
    lines,
    info: (fields, message) => lines.push(`${message} ${String(fields.service ?? '')}`.trim()),
    warn: (fields, message) => lines.push(`${message} ${String(fields.service ?? '')}`.trim()),
  };
}

async function portIsFree(port: number): Promise<boolean> {
  const probe = createServer();
  return new Promise((resolve) => {
    probe.once('error', () => resolve(false));
    probe.listen(port, '127.0.0.1', () => probe.close(() => resolve(true)));
  });
}

describe('runtime/lifecycle: services start in order and stop in reverse', () => {
  it('stops in reverse order of start, and logs each step', async () => {
    const events: string[] = [];
    const log = recordingLog();
    const runner = new ServiceRunner({ log });
    await runner.startAll([openFile('file', events), listener('first listener', events), listener('second listener', events)]);
    assert.deepEqual(runner.running, ['file', 'first listener', 'second listener']);
    const ports = [portOf.get('first listener')!, portOf.get('second listener')!];
    assert.ok(!(await portIsFree(ports[0]!)), 'the listener holds its port while running');
    await runner.stop();
    assert.deepEqual(events, ['start file', 'start first listener', 'start second listener', 'stop second listener', 'stop first listener', 'stop file']);
    assert.deepEqual(log.lines, ['started file', 'started first listener', 'started second listener', 'stopped second listener', 'stopped first listener', 'stopped file']);
    for (const port of ports) assert.ok(await portIsFree(port), `port ${port} is free after stop`);
    assert.deepEqual(runner.running, []);
  });

  it('a start that throws half-way stops exactly the services started before it, and reports that error', async () => {
    const events: string[] = [];
    const runner = new ServiceRunner();
    const file = openFile('file', events);
    const first = listener('listener', events);
    const never = listener('never started', events);
    await assert.rejects(runner.startAll([file, first, failing('broken', events), never]), /broken cannot start/);
    assert.deepEqual(events, ['start file', 'start listener', 'start broken', 'stop listener', 'stop file']);
    assert.equal(first.value.listening, false);
    assert.ok(await portIsFree(portOf.get('listener')!), 'its port is free again');
    await assert.rejects(file.value.stat(), /closed|EBADF/, 'the file handle is closed');
    assert.throws(() => never.value, /has not started/);
  });

  it('startOrStop unwinds services started one by one when a later step throws', async () => {
    const events: string[] = [];
    const runner = new ServiceRunner();
    await assert.rejects(
      runner.startOrStop(async () => {
        const server = (await runner.start(listener('listener', events))).value;
        assert.ok(server.listening);
        throw new Error('config step failed');
      }),
      /config step failed/,
    );
    assert.deepEqual(events, ['start listener', 'stop listener']);
  });

  it('a stop that hangs is given up after the timeout; the others still stop and the first error is thrown', async () => {
    const events: string[] = [];
    const runner = new ServiceRunner({ stopTimeoutMs: 200 });
    const hanging: Service = { name: 'hanging', start() {}, stop: () => new Promise<void>(() => undefined) };
    const throwing: Service = { name: 'throwing', start() {}, stop() { throw new Error('stop failed'); } };
    await runner.startAll([listener('listener', events), throwing, hanging]);
    const started = Date.now();
    await assert.rejects(runner.stop(), (e) => e instanceof StopTimeoutError && e.service === 'hanging');
    assert.ok(Date.now() - started < 2_000, 'stop does not hang');
    assert.deepEqual(events, ['start listener', 'stop listener']);
  });

  it('stop is idempotent and a stopping runner starts nothing new', async () => {
    const events: string[] = [];
    const runner = new ServiceRunner();
    await runner.start(listener('listener', events));
    await Promise.all([runner.stop(), runner.stop()]);
    assert.deepEqual(events, ['start listener', 'stop listener']);
    await assert.rejects(runner.start(listener('late', events)), /stopping/);
    assert.deepEqual(events, ['start listener', 'stop listener']);
  });

  it('a service still starting when stop is asked is stopped once it has started, and its start rejects', async () => {
    const events: string[] = [];
    const runner = new ServiceRunner();
    await runner.start(listener('first', events));
    const slow = listener('slow', events);
    const slowStart = slow.start.bind(slow);
    slow.start = async () => {
      await new Promise((r) => setTimeout(r, 50));
      await slowStart();
    };
    const starting = runner.start(slow);
    await new Promise((r) => setTimeout(r, 10));
    await runner.stop();
    await assert.rejects(starting, /finished starting after stop was asked/);
    assert.deepEqual(events, ['start first', 'stop first', 'start slow', 'stop slow']);
    assert.deepEqual(runner.running, []);
  });
});
