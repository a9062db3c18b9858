/**
 * The web pages (web/, built by `npm run build:web` into web/dist) served by the server, at /checkout, /dapp and
 * /dashboard, with their hashed assets under /assets. Without a build the pages answer 503 saying how to make
 * one, instead of a bare 404.
 */
import { existsSync } from "node:fs";
import path from "node:path";
import express, { type RequestHandler, type Router } from "express";
import { INTERNAL, type ApiRegistry, answer, problems } from "./openapiResponses";
import { sendProblem } from "./problem";

export const WEB_DIST = path.resolve(__dirname, "..", "..", "web", "dist");

/** The pages: path, HTML file, operationId and what it is. */
const PAGES = [
  { path: "/checkout", file: "checkout.html", operationId: "checkoutPage", summary: "The checkout page: top up a smart account's gas quota (`?account=0x…&lang=zh|en&order=`)" },
  { path: "/dapp", file: "dapp.html", operationId: "demoDappPage", summary: "The demo DApp: a browser-held SimpleAccount sending sponsored UserOperations (sandbox mode)" },
  { path: "/dashboard", file: "dashboard.html", operationId: "dashboardPage", summary: "The operations dashboard (asks for the admin token; reads the /admin API)" },
] as const;

export function webRouter(dist = WEB_DIST): Router {
  const router = express.Router();
  const page =
    (file: string): RequestHandler =>
    (_req, res) => {
      const html = path.join(dist, file);
      if (!existsSync(html)) return sendProblem(res, 503, "web_not_built", "the web pages are not built: run `npm run build:web`");
      res.setHeader("cache-control", "no-cache");
      res.sendFile(html);
    };
  for (const p of PAGES) router.get(p.path, page(p.file));
  // the hashed bundles in dist/assets (a file name changes with its content, so they are cached for good)
  router.use(express.static(dist, { index: false, redirect: false, immutable: true, maxAge: "1y" }));
  return router;
}

/** The OpenAPI paths of `webRouter`'s pages (the assets are not API). */
export function registerWebPaths(registry: ApiRegistry): void {
  for (const p of PAGES) {
    registry.registerPath({
      method: "get",
      path: p.path,
      tags: ["operations"],
      operationId: p.operationId,
      summary: p.summary,
      description: "An HTML page built from web/ (`npm run build:web`); its scripts and styles are served under /assets.",
      responses: { "200": answer("the page", { "text/html": { schema: { type: "string" } } }), ...problems([{ status: 503, type: "web_not_built" }, INTERNAL]) },
    });
  }
}
