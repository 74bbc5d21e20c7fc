/**
 * Layering (docs/architecture.md): imports point down only.
 *
 *   cli, examples, bench          may import every layer below (public entries)
 *   algorithms                    framework, ibp, nfu-kernels
 *   framework                     ibp, nfu-kernels — never depot
 *   depot                         ibp, nfu-kernels — never framework
 *   ibp                           nfu-kernels
 *   nfu-kernels                   nothing (pure math)
 *
 * A layer reaches another only through its public index.ts; nothing imports test/ or bench/.
 */
const allowed = {
  'nfu-kernels': [],
  ibp: ['nfu-kernels'],
  depot: ['ibp', 'nfu-kernels'],
  framework: ['ibp', 'nfu-kernels'],
  algorithms: ['framework', 'ibp', 'nfu-kernels'],
  cli: ['algorithms', 'framework', 'depot', 'ibp', 'nfu-kernels'],
  examples: ['algorithms', 'framework', 'depot', 'ibp', 'nfu-kernels'],
  bench: ['algorithms', 'framework', 'depot', 'ibp', 'nfu-kernels', 'cli'],
};
const layers = Object.keys(allowed);

module.exports = {
  forbidden: [
    ...layers.map((layer) => {
      const forbidden = layers.filter((other) => other !== layer && !allowed[layer].includes(other));
      return {
        name: `${layer}-layering`,
        severity: 'error',
        comment: `${layer} may import only ${allowed[layer].join(', ') || 'itself'}`,
        from: { path: `^${layer}/` },
        to: { path: `^(${forbidden.join('|')})/` },
      };
    }),
    ...layers.map((layer) => ({
      name: `${layer}-public-entry-only`,
      severity: 'error',
      comment: `other layers import ${layer} only through ${layer}/index.ts`,
      from: { path: '^(ibp|depot|framework|algorithms|cli|examples|bench)/', pathNot: `^${layer}/` },
      to: { path: `^${layer}/`, pathNot: `^${layer}/index\\.ts$` },
    })),
    {
      name: 'nfu-kernels-pure',
      severity: 'error',
      comment: 'nfu-kernels is pure math: no Node built-ins, no packages but pure-JS hashing',
      from: { path: '^nfu-kernels/' },
      to: { dependencyTypes: ['core', 'npm', 'npm-dev'], pathNot: '@noble/hashes' },
    },
    {
      name: 'ibp-no-server-packages',
      severity: 'error',
      comment: 'the wire layer stays light: no storage, logging or worker-pool packages',
      from: { path: '^ibp/' },
      to: { path: '(better-sqlite3|piscina|pino|prom-client)' },
    },
    {
      name: 'no-test-imports',
      severity: 'error',
      from: { pathNot: '^test/' },
      to: { path: '^test/' },
    },
    {
      name: 'no-circular',
      severity: 'error',
      from: {},
      to: { circular: true },
    },
  ],
  options: {
    doNotFollow: { path: 'node_modules' },
    tsPreCompilationDeps: true,
    tsConfig: { fileName: 'tsconfig.json' },
    enhancedResolveOptions: { extensions: ['.ts', '.js'] },
  },
};
