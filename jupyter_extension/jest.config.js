/**
 * Jest for the sidebar's model and formatters (`npm test`): TypeScript through ts-jest, in Node, offline. The
 * tests live in src/__tests__ and are type-checked with tsconfig.test.json; the build (tsconfig.json) leaves them out.
 */
module.exports = {
  testEnvironment: 'node',
  roots: ['<rootDir>/src'],
  testMatch: ['**/__tests__/**/*.spec.ts'],
  transform: {
    '^.+\\.tsx?$': ['ts-jest', { tsconfig: '<rootDir>/tsconfig.test.json' }]
  }
};
