/**
 * The web pages (web/, built by `npm run build:web` into web/dist) served by the server, at /checkout, /dapp and
 * /dashboard, with their hashed assets under /assets. Without a build the pages answer 503 saying how to make
 * one, instead of a bare 404.
 */
import { existsSync } from "node:fs";
import path from "node:path";
import express, { type RequestHandler, type Router } from "express";
import { sendProblem } from "./problem";

export const WEB_DIST = path.resolve(__dirname, "..", "..", "web", "dist");

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
  router.get("/checkout", page("checkout.html"));
  router.get("/dapp", page("dapp.html"));
  router.get("/dashboard", page("dashboard.html"));
  // the hashed bundles in dist/assets (a file name changes with its content, so they are cached for good)
  router.use(express.static(dist, { index: false, redirect: false, immutable: true, maxAge: "1y" }));
  return router;
}
