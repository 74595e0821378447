import { defineConfig } from "vitest/config";

// Preact's automatic JSX runtime, without a framework plugin: Vite's own transform does it.
export default defineConfig({
  oxc: { jsx: { runtime: "automatic", importSource: "preact" } },
  build: { target: "es2022", sourcemap: false, chunkSizeWarningLimit: 300 },
  server: {
    proxy: {
      "/api": "http://127.0.0.1:7777",
      "/ws": { target: "ws://127.0.0.1:7777", ws: true },
    },
  },
  test: { environment: "node", include: ["src/**/*.test.ts"] },
});
