// ESLint for the web console (`npm run lint`; scripts/build-web runs it): ESLint's and
// typescript-eslint's recommended rules.
import js from "@eslint/js";
import { defineConfig } from "eslint/config";
import globals from "globals";
import tseslint from "typescript-eslint";

export default defineConfig(
  { ignores: ["dist/", "dist.*/", "node_modules/"] },
  js.configs.recommended,
  tseslint.configs.recommended,
  // The console runs in the browser.
  { files: ["src/**/*.ts"], languageOptions: { globals: globals.browser } },
  // Plain scripts served as they are (the sign-in page's passkey step): browser scripts too.
  { files: ["public/**/*.js"], languageOptions: { globals: globals.browser, sourceType: "script" } },
  // The end-to-end scenarios run in Node.js and hand callbacks to the page (browser globals).
  { files: ["e2e/**/*.mjs"], languageOptions: { globals: { ...globals.node, ...globals.browser } } },
  { files: ["*.config.{js,ts}"], languageOptions: { globals: globals.node } },
);
