/**
 * Layering (shared/DESIGN.md §1): imports point down only,
 *   nfu-kernels <- depot <- framework <- algorithms <- examples / bench
 * and nothing imports test/ or bench/.
 */
const layers = ['nfu-kernels', 'depot', 'framework', 'algorithms', 'examples', 'bench'];
const above = (i) => layers.slice(i + 1);

module.exports = {
  forbidden: [
    ...layers.slice(0, 4).map((layer, i) => ({
      name: `${layer}-imports-down-only`,
      severity: 'error',
      comment: `${layer} may not import from ${above(i).join(', ')}`,
      from: { path: `^${layer}/` },
      to: { path: `^(${above(i).join('|')})/` },
    })),
    {
      name: 'nfu-kernels-pure',
      severity: 'error',
      comment: 'nfu-kernels is pure math: no Node built-ins, no packages but pure-JS hashing',
      from: { path: '^nfu-kernels/' },
      to: { dependencyTypes: ['core', 'npm', 'npm-dev'], pathNot: '@noble/hashes' },
    },
    {
      name: 'framework-uses-depot-public-api',
      severity: 'error',
      comment: 'framework imports the depot only through depot/index.ts',
      from: { path: '^framework/' },
      to: { path: '^depot/', pathNot: '^depot/index\\.ts$' },
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
