/// <reference types="vitest/config" />
import react from "@vitejs/plugin-react";
import { defineConfig } from "vite";

// The API serves the built portal (hpcgate/api/portal.py): assets live under /_portal/ so
// they can never collide with an API route. `npm run dev` proxies API calls to a running
// `hpcgate serve` (HPCGATE_API, default http://127.0.0.1:8000).
declare const process: { env: Record<string, string | undefined> };
const api = process.env.HPCGATE_API ?? "http://127.0.0.1:8000";
const apiPrefixes = [
  "/auth", "/users", "/clusters", "/calculations", "/steps", "/logs", "/agent",
  "/notifications", "/ml", "/analyses", "/molecules", "/inputs", "/predictions", "/metrics",
  "/health", "/openapi.json", "/docs",
];

export default defineConfig({
  plugins: [react()],
  build: {
    outDir: "dist",
    assetsDir: "_portal",
    sourcemap: false,
    chunkSizeWarningLimit: 900,
  },
  server: {
    proxy: Object.fromEntries(
      apiPrefixes.map((p) => [
        p,
        {
          target: api,
          // Page navigations (Accept: text/html) stay with the dev server's SPA.
          bypass: (req: { headers: { accept?: string } }) =>
            req.headers.accept?.includes("text/html") ? "/index.html" : undefined,
        },
      ]),
    ),
  },
  test: {
    environment: "node",
    include: ["src/**/*.test.ts"],
  },
});
