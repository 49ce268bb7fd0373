// ESLint for the sidebar's TypeScript (`npm run eslint:check`; `make lint` runs it with `tsc --noEmit`).
// Formatting is prettier's: eslint-config-prettier turns off the rules that would argue with it.
import js from '@eslint/js';
import prettier from 'eslint-config-prettier';
import tseslint from 'typescript-eslint';

export default tseslint.config(
  { ignores: ['lib/', 'node_modules/', '../src/cellbox/labextension/', 'coverage/', '*.js', '*.mjs'] },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  prettier,
  {
    files: ['src/**/*.{ts,tsx}'],
    rules: {
      // As in JupyterLab's own code: namespaces hold a class's companions, and JSON from the server is `any`.
      '@typescript-eslint/no-namespace': 'off',
      '@typescript-eslint/no-explicit-any': 'off',
      '@typescript-eslint/no-unused-vars': ['error', { args: 'none', ignoreRestSiblings: true }],
      eqeqeq: ['error', 'smart'],
      curly: ['error', 'all'],
      'prefer-const': 'error',
      'no-console': ['error', { allow: ['warn', 'error'] }]
    }
  }
);
