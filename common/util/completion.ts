/**
 * Shell completion scripts generated from an executable's command table, so that completion offers
 * exactly the commands and options the parser accepts. zsh runs the bash script through bashcompinit:
 * one script to keep right instead of two.
 */

export interface CompletionTable {
  program: string;
  /** Each command's words ("policy set") and its options, with their dashes. */
  commands: readonly { name: string; options: readonly string[] }[];
  /** Options every command takes. */
  globalOptions: readonly string[];
}

export const SHELLS = ['bash', 'zsh'] as const;
export type Shell = (typeof SHELLS)[number];

export function completionScript(table: CompletionTable, shell: Shell): string {
  const fn = `_${table.program.replace(/[^A-Za-z0-9_]/g, '_')}`;
  const globals = table.globalOptions.join(' ');
  // Longest names first: "policy set" must match before a group's bare "policy".
  const cases = [...table.commands]
    .sort((a, b) => b.name.split(' ').length - a.name.split(' ').length)
    .map((c) => `    *" ${c.name} "*) opts="${[...c.options, ...table.globalOptions].join(' ')}" ;;`);
  const groups = new Map<string, string[]>();
  for (const c of table.commands) {
    const [group, sub] = c.name.split(' ');
    if (sub !== undefined) groups.set(group, [...(groups.get(group) ?? []), sub]);
  }
  const groupCases = [...groups].map(([g, subs]) => `    *" ${g} "*) opts="${subs.join(' ')}" ;;`);
  const firstWords = [...new Set(table.commands.map((c) => c.name.split(' ')[0]))];
  const lines = [
    `# ${shell} completion for ${table.program}: source <(${table.program} completion ${shell})`,
    ...(shell === 'zsh' ? ['autoload -U +X bashcompinit && bashcompinit'] : []),
    `${fn}() {`,
    '  local cur="${COMP_WORDS[COMP_CWORD]}" words=" ${COMP_WORDS[*]:1:COMP_CWORD-1} " opts',
    '  case "$words" in',
    ...cases,
    ...groupCases,
    `    *) opts="${[...firstWords, globals].join(' ')}" ;;`,
    '  esac',
    '  COMPREPLY=($(compgen -W "$opts" -- "$cur"))',
    '}',
    `complete -o default -F ${fn} ${table.program}`,
  ];
  return `${lines.join('\n')}\n`;
}
