import { defineConfig } from 'vitest/config';

/** Configuration of the full chaos run only (`npm run test:chaos`). */
export default defineConfig({
  test: {
    include: ['test/chaos/chaos-full.chaos.ts'],
    testTimeout: 900_000,
    hookTimeout: 60_000,
    pool: 'forks',
  },
});
