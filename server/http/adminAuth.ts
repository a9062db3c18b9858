import { timingSafeEqual } from "node:crypto";
import type { RequestHandler } from "express";
import { sendProblem } from "./problem";

/** Admin routes need `Authorization: Bearer <ADMIN_TOKEN>`; without a configured token they are disabled. */
export function requireAdminToken(token: string | undefined): RequestHandler {
  const expected = token ? Buffer.from(token) : undefined;
  return (req, res, next) => {
    if (!expected) return sendProblem(res, 403, "admin_disabled", "the admin API is disabled: set ADMIN_TOKEN to enable it");
    const given = Buffer.from(/^Bearer (.+)$/.exec(req.header("authorization") ?? "")?.[1] ?? "");
    if (given.length !== expected.length || !timingSafeEqual(given, expected)) {
      return sendProblem(res, 401, "unauthorized", "a valid admin token is required (Authorization: Bearer <ADMIN_TOKEN>)");
    }
    next();
  };
}
