import { Command, Help, InvalidArgumentError, Option } from 'commander';
import { isTkmsError } from '../../core/errors.ts';

/**
 * The pieces every `tkms` command shares: one error format, exit codes (2 for usage errors,
 * 1 for failures, 0 otherwise) and implementations loaded only when their command runs, so
 * `tkms --help` reads no more than the command declarations.
 */

/** A mistake in how the command was called (exit 2); thrown by implementations, too. */
export class UsageError extends Error {
  override name = 'UsageError';
}

/** An implementation: the parsed options in, the exit code out (failures may also throw). */
export type CommandRun<O> = (opts: O, command: TkmsCommand) => Promise<number>;

/** `tkms node start: error [conflict]: …` — the one format of every error line. */
export function errorLine(path: string, code: string, message: string): string {
  return `${path}: error [${code}]: ${message}\n`;
}

/** `tkms decrypt: warning: …` — something the user should know that does not stop the command. */
export function warningLine(path: string, message: string): string {
  return `${path}: warning: ${message}\n`;
}

function failureCode(e: unknown): string {
  if (isTkmsError(e)) return e.code;
  const errno = (e as { code?: unknown } | null)?.code;
  return typeof errno === 'string' && /^E[A-Z]+$/.test(errno) ? errno : 'failed';
}

/** Commander's help, plus "required" on options that must be given (on the line or by their variable). */
class TkmsHelp extends Help {
  override optionDescription(option: Option): string {
    const text = super.optionDescription(option);
    return option.mandatory ? `${text} [required]` : text;
  }
}

export class TkmsCommand extends Command {
  /** The exit code the action that ran chose; read on the root after parsing. */
  outcome = 0;

  override createCommand(name?: string): TkmsCommand {
    return new TkmsCommand(name);
  }

  override createHelp(): Help {
    return Object.assign(new TkmsHelp(), this.configureHelp());
  }

  /** "tkms node start" */
  get path(): string {
    const names: string[] = [];
    for (let c: Command | null = this; c !== null; c = c.parent) names.unshift(c.name());
    return names.join(' ');
  }

  private get top(): TkmsCommand {
    let c: TkmsCommand = this;
    while (c.parent instanceof TkmsCommand) c = c.parent;
    return c;
  }

  /** Every usage error, commander's own included, comes through here. */
  override error(message: string, options?: { code?: string; exitCode?: number }): never {
    const text = `${errorLine(this.path, 'usage', message.replace(/^error: /, ''))}(see "${this.path} --help")`;
    return super.error(text, { code: options?.code ?? 'tkms.usage', exitCode: 2 });
  }

  /** Names the environment variable that would also do (commander's text names neither). */
  missingMandatoryOptionValue(option: Option): never {
    return this.error(`${option.long ?? option.flags} is required${option.envVar === undefined ? '' : ` (or set ${option.envVar})`}`, {
      code: 'commander.missingMandatoryOptionValue',
    });
  }

  /** Runs the implementation `load` imports; loaded only when this command runs. */
  lazyAction<O>(load: () => Promise<CommandRun<O>>): this {
    return this.action(async () => {
      const run = await load();
      let code: number;
      try {
        code = await run(this.opts() as O, this);
      } catch (e) {
        if (e instanceof UsageError) this.error(e.message);
        process.stderr.write(errorLine(this.path, failureCode(e), e instanceof Error ? e.message : 'unexpected error'));
        code = 1;
      }
      this.top.outcome = code;
    });
  }

  /** An "Examples:" section at the end of this command's help. */
  examples(...lines: string[]): this {
    return this.addHelpText('after', `\nExamples:\n${lines.map((l) => `  $ ${l}`).join('\n')}`);
  }
}

/** `--json`, the same on every command that prints a result. */
export function jsonOption(): Option {
  return new Option('--json', 'print the result as one line of JSON');
}

/** Decimal option parser for commander: a number in (0, max], without Number()'s leniency ("0x10", "1e3", " 5"). */
export function positiveUpTo(max: number, unit: string): (value: string) => number {
  return (value) => {
    const n = Number(value);
    if (!/^[0-9]+(\.[0-9]+)?$/.test(value) || n <= 0 || n > max) throw new InvalidArgumentError(`It must be a number of ${unit} in (0, ${max}].`);
    return n;
  };
}

/** Resolves with the first SIGINT or SIGTERM: long-running commands stop their service then. */
export function stopSignal(): Promise<NodeJS.Signals> {
  return new Promise((resolve) => {
    process.once('SIGINT', resolve);
    process.once('SIGTERM', resolve);
  });
}

/** Integer option parser for commander: rejects what Number() would quietly accept. */
export function integerIn(min: number, max: number): (value: string) => number {
  return (value) => {
    if (!/^[0-9]+$/.test(value) || Number(value) < min || Number(value) > max) throw new InvalidArgumentError(`It must be an integer in ${min}..${max}.`);
    return Number(value);
  };
}
