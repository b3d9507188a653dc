import { spawn, type ChildProcess } from 'node:child_process';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { TkmsError } from '../core/errors.ts';

/**
 * A local EVM for the devnet and the tests: Anvil from the @foundry-rs/anvil npm package, whose
 * platform package ships the binary (no install script needed). Paris by default, the oldest fork
 * the contract is compiled for, so nothing newer sneaks in.
 */

/** Anvil's first dev account (mnemonic "test test … junk"): public knowledge, for dev chains only. */
export const ANVIL_DEV_PRIVATE_KEY = '0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80' as const;
export const ANVIL_CHAIN_ID = 31337;

export interface AnvilOptions {
  host?: string;
  /** 0 (the default) takes a free port. */
  port?: number;
  chainId?: number;
  /** Mine a block every this many seconds; without it a block is mined per transaction only. */
  blockTimeSeconds?: number;
  hardfork?: string;
  /** Keep the chain across restarts (anvil --state). */
  stateFile?: string;
  /** Resolves to the binary; defaults to the platform package's. */
  binary?: string;
}

export interface AnvilChain {
  url: string;
  chainId: number;
  pid: number;
  stop(): Promise<void>;
}

/** The anvil binary shipped for this platform, or a clear error naming the package to install. */
export function anvilBinary(): string {
  const pkg = `@foundry-rs/anvil-${process.platform}-${process.arch === 'x64' ? 'amd64' : process.arch}`;
  try {
    return join(dirname(createRequire(import.meta.url).resolve(`${pkg}/package.json`)), 'bin', process.platform === 'win32' ? 'anvil.exe' : 'anvil');
  } catch {
    throw new TkmsError('unavailable', `no local EVM: install the dev dependency @foundry-rs/anvil (it brings ${pkg}) with "npm ci"`);
  }
}

export async function startAnvil(options: AnvilOptions = {}): Promise<AnvilChain> {
  const host = options.host ?? '127.0.0.1';
  const chainId = options.chainId ?? ANVIL_CHAIN_ID;
  const args = ['--host', host, '--port', String(options.port ?? 0), '--chain-id', String(chainId), '--hardfork', options.hardfork ?? 'paris', '--accounts', '10'];
  if (options.blockTimeSeconds !== undefined) args.push('--block-time', String(options.blockTimeSeconds));
  if (options.stateFile !== undefined) args.push('--state', options.stateFile);
  const child = spawn(options.binary ?? anvilBinary(), args, { stdio: ['ignore', 'pipe', 'pipe'] });
  const url = await new Promise<string>((resolve, reject) => {
    let out = '';
    const timer = setTimeout(() => fail(new TkmsError('timeout', 'anvil did not start within 20 s')), 20_000);
    const fail = (e: Error) => {
      clearTimeout(timer);
      child.kill('SIGKILL');
      reject(e);
    };
    child.once('error', (e) => fail(new TkmsError('unavailable', `anvil could not start: ${e.message}`)));
    child.once('exit', (code) => fail(new TkmsError('unavailable', `anvil exited with ${code} before listening: ${out.slice(-500)}`)));
    const onData = (chunk: Buffer) => {
      out += chunk.toString('utf8');
      const m = /Listening on ([^\s]+)/.exec(out);
      if (m) {
        clearTimeout(timer);
        child.removeAllListeners('exit');
        child.stdout!.off('data', onData);
        child.stdout!.resume();
        child.stderr!.resume();
        resolve(`http://${m[1]}`);
      } else if (out.length > 64 * 1024) {
        out = out.slice(-4096);
      }
    };
    child.stdout!.on('data', onData);
    child.stderr!.on('data', (c: Buffer) => (out += c.toString('utf8')));
  });
  return { url, chainId, pid: child.pid!, stop: () => stopChild(child) };
}

function stopChild(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => {
    const timer = setTimeout(() => child.kill('SIGKILL'), 5_000);
    child.once('exit', () => {
      clearTimeout(timer);
      resolve();
    });
    child.kill('SIGTERM');
  });
}
