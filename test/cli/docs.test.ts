import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { anvilProgram } from '../../cli/main.js';

const DOC = readFileSync(new URL('../../docs/cli.md', import.meta.url), 'utf8');

/** The `## …` sections of docs/cli.md by heading. */
function sections(): Array<{ heading: string; body: string }> {
  return DOC.split(/^## /m)
    .slice(1)
    .map((s) => ({ heading: s.slice(0, s.indexOf('\n')), body: s }));
}

describe('docs/cli.md', () => {
  it('has a section for every command, naming each of its options', () => {
    const missing: string[] = [];
    for (const cmd of anvilProgram().commands) {
      const section = sections().find((s) => new RegExp(`\\banvil ${cmd.name()}\\b`).test(s.heading));
      if (section === undefined) {
        missing.push(`anvil ${cmd.name()}: no section`);
        continue;
      }
      for (const o of cmd.options) {
        if (o.long !== undefined && !section.body.includes(o.long)) missing.push(`anvil ${cmd.name()} ${o.long}`);
      }
    }
    expect(missing).toEqual([]);
  });
});
