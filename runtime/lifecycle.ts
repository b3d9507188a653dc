/**
 * Start-up and shutdown of a process's services, modelled on libp2p's `Startable`: each service
 * starts in order and stops in reverse. A start that fails half-way stops exactly what had
 * started, and every stop is bounded in time, so a failed or stopped process never hangs on, or
 * leaks, a port, a file or a key.
 */
export interface Service {
  /** Short and stable: it names the service in log lines and errors. */
  readonly name: string;
  start(): Promise<void> | void;
  stop(): Promise<void> | void;
}

/** What the runner logs through (a pino logger fits). */
export interface LifecycleLog {
  info(fields: Record<string, unknown>, message: string): void;
  warn(fields: Record<string, unknown>, message: string): void;
}

export const DEFAULT_STOP_TIMEOUT_MS = 10_000;

export interface ServiceRunnerOptions {
  log?: LifecycleLog;
  /** Longest one service's stop may take before the runner gives up on it and moves on. */
  stopTimeoutMs?: number;
}

export class StopTimeoutError extends Error {
  constructor(readonly service: string, timeoutMs: number) {
    super(`${service} did not stop within ${timeoutMs} ms`);
  }
}

/** A service from two functions; `start` returns the value later services use. */
export function defineService<T>(name: string, start: () => Promise<T> | T, stop: (value: T) => Promise<void> | void): Service & { readonly value: T } {
  let value: { v: T } | undefined;
  return {
    name,
    get value(): T {
      if (value === undefined) throw new Error(`${name} has not started`);
      return value.v;
    },
    async start() {
      value = { v: await start() };
    },
    async stop() {
      if (value !== undefined) await stop(value.v);
    },
  };
}

export class ServiceRunner {
  readonly #log: LifecycleLog | undefined;
  readonly #stopTimeoutMs: number;
  readonly #started: Service[] = [];
  #stopping: Promise<void> | undefined;

  constructor(options: ServiceRunnerOptions = {}) {
    this.#log = options.log;
    this.#stopTimeoutMs = options.stopTimeoutMs ?? DEFAULT_STOP_TIMEOUT_MS;
  }

  /** Names of the services running now, in start order. */
  get running(): string[] {
    return this.#started.map((s) => s.name);
  }

  /**
   * Starts one service after those already started, and returns it. If its start throws, it
   * counts as not started (its own start cleans up what it half-opened) and the error is thrown.
   */
  async start<S extends Service>(service: S): Promise<S> {
    if (this.#stopping !== undefined) throw new Error(`cannot start ${service.name}: the runner is stopping`);
    await service.start();
    if (this.#stopping !== undefined) {
      // stop() came while this one was starting: the stop already under way does not know it.
      await this.#stopWithin(service).catch(() => undefined);
      throw new Error(`${service.name} finished starting after stop was asked; stopped it again`);
    }
    this.#started.push(service);
    this.#log?.info({ service: service.name }, 'started');
    return service;
  }

  /** Starts a service made of two functions (defineService) and returns what its start opened. */
  async open<T>(name: string, start: () => Promise<T> | T, stop: (value: T) => Promise<void> | void): Promise<T> {
    return (await this.start(defineService(name, start, stop))).value;
  }

  /**
   * Starts the services in order; if one fails, stops those already started (in reverse) and
   * throws the failed start's error.
   */
  async startAll(services: readonly Service[]): Promise<void> {
    await this.startOrStop(async () => {
      for (const service of services) await this.start(service);
    });
  }

  /** Runs `body` (which starts services); if it throws, stops everything started, then rethrows. */
  async startOrStop<T>(body: () => Promise<T>): Promise<T> {
    try {
      return await body();
    } catch (e) {
      this.#log?.warn({ running: this.running, err: e instanceof Error ? e.message : String(e) }, 'start failed; stopping what started');
      await this.stop().catch(() => undefined);
      throw e;
    }
  }

  /**
   * Stops every started service in reverse order, each within the timeout. Every service is asked
   * to stop even when an earlier one fails; the first failure is thrown at the end. Idempotent.
   */
  stop(): Promise<void> {
    this.#stopping ??= this.#stopAll();
    return this.#stopping;
  }

  async #stopAll(): Promise<void> {
    let first: unknown;
    for (const service of [...this.#started].reverse()) {
      try {
        await this.#stopWithin(service);
        this.#log?.info({ service: service.name }, 'stopped');
      } catch (e) {
        first ??= e;
        this.#log?.warn({ service: service.name, err: e instanceof Error ? e.message : String(e) }, 'stop failed');
      }
    }
    this.#started.length = 0;
    if (first !== undefined) throw first;
  }

  async #stopWithin(service: Service): Promise<void> {
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new StopTimeoutError(service.name, this.#stopTimeoutMs)), this.#stopTimeoutMs);
    });
    try {
      await Promise.race([Promise.resolve().then(() => service.stop()), timeout]);
    } finally {
      clearTimeout(timer);
    }
  }
}
