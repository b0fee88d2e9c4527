// Jest runs TypeScript through swc (type checking is `tsc --noEmit`, run separately by `npm test`).
/** @type {import('jest').Config} */
module.exports = {
  testEnvironment: 'node',
  roots: ['<rootDir>/test'],
  testMatch: ['**/*.test.ts'],
  transform: { '^.+\\.ts$': ['@swc/jest', { jsc: { target: 'es2022', parser: { syntax: 'typescript' } } }] },
  testTimeout: 60_000,
  // Integration tests mount file systems, start etcd and load BPF: run files one at a time on 2 cores.
  maxWorkers: 1,
  verbose: false,
};
