import { defineConfig } from "vite";

// Writes to dist/, which the server's build script embeds; scripts/build-web sets
// IRONMESH_WEB_OUT to build into a fresh folder first and then swaps it in.
export default defineConfig({
  base: "/",
  build: {
    outDir: process.env.IRONMESH_WEB_OUT ?? "dist",
    emptyOutDir: true,
    assetsDir: "assets",
    // No inline scripts or data: URLs for code: the CSP forbids them.
    assetsInlineLimit: 0,
    modulePreload: { polyfill: false },
    sourcemap: false,
    target: "es2022",
  },
});
