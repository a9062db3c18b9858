import js from "@eslint/js";
import tseslint from "typescript-eslint";

export default tseslint.config(
  { ignores: ["node_modules/", "artifacts/", "cache/", "coverage/", "deployments/", "web/dist/", "test-results/"] },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    languageOptions: { globals: { require: "readonly", module: "readonly", __dirname: "readonly", process: "readonly", console: "readonly" } },
    rules: {
      "@typescript-eslint/no-require-imports": "off",
      "@typescript-eslint/no-non-null-assertion": "off",
      "@typescript-eslint/no-unused-vars": ["error", { argsIgnorePattern: "^_" }],
    },
  },
  {
    // the production service never depends on dev tooling or command-line tools (its tests may use devtools/)
    files: ["server/**/*.ts"],
    ignores: ["server/**/*.test.ts"],
    rules: {
      "no-restricted-imports": ["error", { patterns: [{ group: ["**/devtools/**", "**/scripts/**", "**/contracts/test/**"], message: "server/ must not import dev tooling or scripts" }] }],
    },
  },
  {
    // the layers below the domains know none of them: platform (logging, metrics, errors, database) and chain access
    files: ["server/platform/**/*.ts", "server/chain/**/*.ts", "server/http/problem.ts"],
    ignores: ["server/**/*.test.ts"],
    rules: {
      "no-restricted-imports": [
        "error",
        {
          patterns: [
            { group: ["**/devtools/**", "**/scripts/**", "**/contracts/test/**"], message: "server/ must not import dev tooling or scripts" },
            { group: ["**/sponsorship/**", "**/payments/**", "**/admin/**", "**/ledger/**"], message: "platform/ and chain/ sit below the domains and import none of them" },
          ],
        },
      ],
    },
  },
  {
    files: ["web/src/**/*.ts"],
    languageOptions: {
      globals: { window: "readonly", document: "readonly", location: "readonly", history: "readonly", navigator: "readonly", fetch: "readonly", crypto: "readonly", localStorage: "readonly", console: "readonly", URLSearchParams: "readonly", setTimeout: "readonly", sessionStorage: "readonly", HTMLElement: "readonly" },
    },
  },
);
