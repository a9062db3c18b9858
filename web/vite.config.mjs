import path from "node:path";
import { defineConfig } from "vite";

const here = import.meta.dirname;

/** The pages, built into web/dist and served by the server (server/http/web.ts). */
export default defineConfig({
  root: here,
  base: "/",
  build: {
    outDir: path.join(here, "dist"),
    emptyOutDir: true,
    target: "es2022",
    rollupOptions: {
      input: {
        checkout: path.join(here, "checkout.html"),
        dapp: path.join(here, "dapp.html"),
        dashboard: path.join(here, "dashboard.html"),
      },
    },
  },
});
