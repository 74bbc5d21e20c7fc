/** The benchmark's command-line flags: `--json`, and numeric `--name N` with a fallback. */
export function benchArgs(argv: readonly string[] = process.argv.slice(2)): {
  args: readonly string[];
  json: boolean;
  flag: (name: string, fallback: number) => number;
} {
  return {
    args: argv,
    json: argv.includes('--json'),
    flag: (name, fallback) => {
      const i = argv.indexOf(name);
      return i >= 0 ? Number(argv[i + 1]) : fallback;
    },
  };
}
