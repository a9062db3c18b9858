/** The payments HTTP API: top-up orders, the gateways' callbacks, refunds. */
import express, { type Request, type RequestHandler, type Router } from "express";
import { isAddress } from "viem";
import { z } from "zod";
import { type Database, isDatabaseUnavailable } from "../platform/db/database";
import { AdmissionQueue } from "./admission";
import { clientKey } from "../http/clientAddress";
import { sendProblem } from "../http/problem";
import type { RateLimiter } from "../platform/rateLimit";
import { type CallbackResult, handlePaymentCallback, isAuthentic } from "./callbacks";
import { PaymentInputError } from "./errors";
import { PROVIDERS, type PaymentGateway, type Provider } from "./gateway";
import { type Order, type OrderLimits, createOrder, getOrder } from "./orders";
import { type Refund, getRefund, requestRefund } from "./refunds";

export const accountSchema = z
  .string()
  .regex(/^0x[0-9a-fA-F]{40}$/, "must be a 0x-prefixed 20-byte hex address")
  .refine((a) => isAddress(a, { strict: true }) || a === a.toLowerCase(), "has a wrong EIP-55 checksum (send it lower-case or correctly checksummed)");

/** Fen as a JSON integer or a string of digits (for amounts beyond 2^53); never a fraction. */
export const fenSchema = z
  .union([z.number().int("must be a whole number of fen").safe(), z.string().regex(/^\d{1,18}$/, "must be a whole number of fen")])
  .transform((v) => BigInt(v));

const idempotencyKeySchema = z.string().regex(/^[\w.:-]{1,128}$/, "must be 1–128 characters of letters, digits and _ . : -");

const createOrderSchema = z.strictObject({
  account: accountSchema,
  amountFen: fenSchema,
  provider: z.enum(PROVIDERS as [Provider, ...Provider[]]),
  idempotencyKey: idempotencyKeySchema.optional(),
});

const refundSchema = z.strictObject({
  orderId: z.string().regex(/^fp[0-9a-f]{24}$/, "is not an order id"),
  amountFen: fenSchema.optional(),
  idempotencyKey: idempotencyKeySchema.optional(),
  reason: z.string().max(80).optional(),
});

export function orderView(order: Order) {
  return {
    id: order.id,
    account: order.account,
    provider: order.provider,
    amountFen: order.amountFen.toString(),
    status: order.status,
    ...(order.qrCode ? { qrCode: order.qrCode } : {}),
    ...(order.payUrl ? { payUrl: order.payUrl } : {}),
    expiresAt: order.expiresAt.toISOString(),
    paidAt: order.paidAt?.toISOString() ?? null,
    refundedFen: order.refundedFen.toString(),
    createdAt: order.createdAt.toISOString(),
  };
}

export function refundView(refund: Refund) {
  return {
    id: refund.id,
    orderId: refund.orderId,
    account: refund.account,
    amountFen: refund.amountFen.toString(),
    status: refund.status,
    gatewayRefundNo: refund.gatewayRefundNo,
    failureReason: refund.failureReason,
    createdAt: refund.createdAt.toISOString(),
    updatedAt: refund.updatedAt.toISOString(),
  };
}

export type PaymentsRouterDeps = {
  db: Database;
  gateways: ReadonlyMap<Provider, PaymentGateway>;
  limits: OrderLimits;
  requireAdmin: RequestHandler;
  /** How many callbacks are processed at once, and how long one may wait for its turn before a 503. */
  callbackAdmission: { concurrency: number; maxWaitMs: number };
  /**
   * Order creation per client IP and per account (scopes orderIp, orderAccount), and callbacks that fail
   * verification per client IP (notifyIp): an IP over that limit is answered 429 unread until the minute passes.
   */
  rateLimiter?: RateLimiter;
  onCallback?: (provider: Provider, result: CallbackResult, req: Request) => void;
};

export function paymentsRouter(deps: PaymentsRouterDeps): Router {
  const router = express.Router();
  const json = express.json({ limit: "16kb" });
  const callbacks = new AdmissionQueue(deps.callbackAdmission);

  router.post("/v1/orders", json, async (req, res) => {
    const input = createOrderSchema.parse(req.body ?? {});
    // each order is a real trade at the gateway, under the merchant's quotas and our circuit breaker: one client
    // must not be able to spend them for everyone (an idempotent retry of an existing order is counted too)
    const refusal = await deps.rateLimiter?.consume({ orderIp: clientKey(req.ip), orderAccount: input.account.toLowerCase() });
    if (refusal) {
      res.setHeader("retry-after", String(refusal.retryAfterSeconds));
      return sendProblem(res, 429, "rate_limited", `too many top-up orders for this ${refusal.scope === "orderIp" ? "client" : "account"} (at most ${refusal.limit} a minute); retry in ${refusal.retryAfterSeconds} s`, {
        scope: refusal.scope === "orderIp" ? "ip" : "account",
        retryAfterSeconds: refusal.retryAfterSeconds,
      });
    }
    const order = await createOrder(deps, input);
    res.status(201).json(orderView(order));
  });

  router.get("/v1/orders/:id", async (req, res) => {
    const id = String(req.params.id);
    if (!/^fp[0-9a-f]{24}$/.test(id)) throw new PaymentInputError(`${id} is not an order id`);
    res.json(orderView(await getOrder(deps.db, id)));
  });

  // The raw body is what the signature covers: parse nothing before verification.
  const raw = express.text({ type: () => true, limit: "64kb" });
  for (const provider of PROVIDERS) {
    router.post(`/v1/payments/${provider}/notify`, raw, async (req, res) => {
      const gateway = deps.gateways.get(provider);
      if (!gateway) {
        res.status(404).type("text/plain").send(`${provider} is not enabled`);
        return;
      }
      const rawBody = typeof req.body === "string" ? req.body : "";
      // an IP that keeps sending callbacks that do not verify is not a gateway: refuse it unread for a while
      const blocked = await deps.rateLimiter?.peek({ notifyIp: clientKey(req.ip) });
      if (blocked) {
        const busy = gateway.failureReply("too many unverifiable notifications from this address");
        res.setHeader("retry-after", String(blocked.retryAfterSeconds));
        res.status(429).type(busy.contentType).send(busy.body);
        return;
      }
      let handled: Awaited<ReturnType<typeof callbacks.run<CallbackResult>>>;
      try {
        handled = await callbacks.run(() => handlePaymentCallback(deps.db, gateway, { headers: req.headers, rawBody }));
      } catch (error) {
        if (!isDatabaseUnavailable(error)) throw error;
        // nothing was credited or stored: the gateway's failure reply makes it retry on its schedule
        const down = gateway.failureReply("temporarily unavailable, retry later");
        res.status(503).type(down.contentType).send(down.body);
        return;
      }
      if (!handled.admitted) {
        // over capacity: answer at once, the gateway retries later (nothing was read or stored)
        const busy = gateway.failureReply("busy, retry later");
        res.status(503).type(busy.contentType).send(busy.body);
        return;
      }
      if (!isAuthentic(handled.result.outcome)) await deps.rateLimiter?.consume({ notifyIp: clientKey(req.ip) });
      deps.onCallback?.(provider, handled.result, req);
      const { reply } = handled.result;
      res.status(reply.status).type(reply.contentType).send(reply.body);
    });
  }

  router.post("/v1/refunds", deps.requireAdmin, json, async (req, res) => {
    const input = refundSchema.parse(req.body ?? {});
    const refund = await requestRefund(deps, input);
    res.status(201).json(refundView(refund));
  });

  router.get("/v1/refunds/:id", deps.requireAdmin, async (req, res) => {
    res.json(refundView(await getRefund(deps.db, String(req.params.id))));
  });

  return router;
}
