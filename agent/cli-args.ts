/** Parsing shared by the agent's commands: node's parseArgs, strict, its errors as UsageErrors (exit 64). */
import { parseArgs } from 'node:util';
import { UsageError } from '../common/util/usage-error';

export type OptionSpecs = Record<string, { type: 'string' | 'boolean'; short?: string }>;

export function parse(
  args: string[],
  options: OptionSpecs,
): { values: Record<string, string | boolean | undefined>; positionals: string[] } {
  try {
    const { values, positionals } = parseArgs({ args, options, allowPositionals: true, strict: true });
    return { values: values as Record<string, string | boolean | undefined>, positionals };
  } catch (err) {
    throw new UsageError((err as Error).message);
  }
}
