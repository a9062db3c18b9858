import type { z } from "zod";
import { AppError } from "../platform/errors";

/** Parses a query, path parameters or a body; the 400's detail names each bad field (`where` when an issue has no path). */
export function parseInput<T extends z.ZodType>(schema: T, input: unknown, where: string): z.output<T> {
  const result = schema.safeParse(input);
  if (result.success) return result.data;
  throw new AppError(400, "invalid_request", result.error.issues.map((i) => `${i.path.length ? i.path.map(String).join(".") : where}: ${i.message}`).join("; "));
}
