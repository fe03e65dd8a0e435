// ESLint 9 flat config: @eslint/js and typescript-eslint recommended (syntax only) on everything, plus
// three type-aware rules on the TypeScript, for the bug class that matters most here: a promise
// nobody awaits (an unbounded wait, an unhandled rejection, a settlement step that silently did not
// happen). `npm run lint`; `.ci/run` runs it before the tests.
import js from "@eslint/js";
import globals from "globals";
import tseslint from "typescript-eslint";

export default tseslint.config(
  { ignores: ["dist/", "node_modules/", "coverage/", ".data/", "bench/results/", "scratch/", "contracts/build/"] },
  js.configs.recommended,
  tseslint.configs.recommended,
  {
    languageOptions: { globals: globals.node },
    linterOptions: { reportUnusedDisableDirectives: "error" },
    rules: {
      // `_name` marks a deliberately unused binding (e.g. a field dropped by a rest destructuring).
      "@typescript-eslint/no-unused-vars": ["error", { argsIgnorePattern: "^_", varsIgnorePattern: "^_", caughtErrors: "none", ignoreRestSiblings: true }],
      // Meant for `const self = this` in pre-arrow-function closures; here it only flags a cursor that
      // starts at `this` (FacilitatorError.walk's cause-chain loop).
      "@typescript-eslint/no-this-alias": "off",
    },
  },
  {
    files: ["**/*.ts"],
    languageOptions: { parserOptions: { projectService: true, tsconfigRootDir: import.meta.dirname } },
    rules: {
      "@typescript-eslint/no-floating-promises": "error",
      "@typescript-eslint/await-thenable": "error",
      // checksVoidReturn off: async Express handlers (bench/, examples/, the SDK e2e tests) are fine
      // (Express 4 ignores the promise; each handler catches its own errors). Conditionals and spreads
      // of a promise are still errors.
      "@typescript-eslint/no-misused-promises": ["error", { checksVoidReturn: false }],
    },
  },
  {
    // Tests read JSON answers and database rows as loosely typed records (`body.extra.name`).
    files: ["test/**/*.ts"],
    rules: { "@typescript-eslint/no-explicit-any": "off" },
  },
);
