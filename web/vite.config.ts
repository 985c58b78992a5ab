import { defineConfig } from "vite";

// The server's build script sets IRONMESH_WEB_OUT to a folder under Cargo's OUT_DIR and
// embeds what lands there; `npm run build` alone writes to dist/.
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
