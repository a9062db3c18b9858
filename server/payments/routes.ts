/** The payments HTTP API: top-up orders, the gateways' callbacks, refunds. */
import type { ResponseConfig, ZodContentObject } from "@asteasolutions/zod-to-openapi";
import { z } from "../schemas/zod";
import express, { type Request, type RequestHandler, type Router } from "express";
import { type Database, isDatabaseUnavailable } from "../platform/db/database";
import { AdmissionQueue } from "./admission";
import { clientKey } from "../http/clientAddress";
import { ADMIN, ADMIN_SECURITY, type ApiRegistry, INTERNAL, type Json, NOT_FOUND, type ProblemCase, answer, jsonAnswer, jsonBody, jsonRequest, problems } from "../http/openapiResponses";
import { sendProblem } from "../http/problem";
import type { RateLimiter } from "../platform/rateLimit";
import { CALLBACK_OUTCOMES } from "../schemas/admin";
import {
  type OrderView,
  type RefundView,
  alipayNotification,
  createOrderRequest,
  orderParams,
  orderSchema,
  refundParams,
  refundRequest,
  refundSchema,
  wechatBlockedReply,
  wechatBusyReply,
  wechatFailReply,
  wechatNotification,
  wechatNotificationHeaders,
} from "../schemas/payments";
import { orderIdSchema } from "../schemas/primitives";
import { type CallbackResult, createCallbackHandler, isAuthentic } from "./callbacks";
import { PaymentInputError } from "./errors";
import { PROVIDERS, type PaymentGateway, type Provider } from "./gateway";
import { type Order, type OrderLimits, completeJsapiOrder, createOrder, findOrder, getOrder } from "./orders";
import { OAUTH_CALLBACK_PATH, OAUTH_COOKIE, OAUTH_STATE_TTL_SECONDS, checkOAuthState, newBrowserNonce, readCookie, signOAuthState } from "./oauthState";
import { type Refund, getRefund, requestRefund } from "./refunds";

export function orderView(order: Order): OrderView {
  return {
    id: order.id,
    account: order.account,
    provider: order.provider,
    amountFen: order.amountFen.toString(),
    status: order.status,
    flow: order.flow,
    ...(order.qrCode ? { qrCode: order.qrCode } : {}),
    ...(order.payUrl ? { payUrl: order.payUrl } : {}),
    ...(order.jsapiParams && order.status === "pending" ? { jsapiParams: order.jsapiParams } : {}),
    expiresAt: order.expiresAt.toISOString(),
    paidAt: order.paidAt?.toISOString() ?? null,
    refundedFen: order.refundedFen.toString(),
    createdAt: order.createdAt.toISOString(),
  };
}

/** The payer's IP as WeChat Pay H5 wants it (scene_info.payer_client_ip): req.ip, which honours TRUST_PROXY. */
function payerClientIp(ip: string | undefined): string | undefined {
  if (!ip) return undefined;
  return /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(ip)?.[1] ?? ip;
}

export function refundView(refund: Refund): RefundView {
  return {
    id: refund.id,
    orderId: refund.orderId,
    account: refund.account,
    amountFen: refund.amountFen.toString(),
    status: refund.status,
    gatewayRefundNo: refund.gatewayRefundNo,
    failureReason: refund.failureReason,
    gatewayStatus: refund.gatewayStatus,
    succeededAt: refund.succeededAt?.toISOString() ?? null,
    createdAt: refund.createdAt.toISOString(),
    updatedAt: refund.updatedAt.toISOString(),
  };
}

export type PaymentsRouterDeps = {
  /** Where payers' browsers reach us: the OAuth redirect_uri and the checkout page are below it. */
  publicUrl?: string;
  db: Database;
  gateways: ReadonlyMap<Provider, PaymentGateway>;
  limits: OrderLimits;
  requireAdmin: RequestHandler;
  /** Admits callbacks (how many at once, how long one may wait for its turn before a 503). */
  callbackAdmission: AdmissionQueue;
  /** A callback not done this long after it arrived is answered the failure reply (503) while its work goes on. */
  callbackAnswerWithinMs: number;
  /**
   * Order creation per client IP and per account (scopes orderIp, orderAccount), and callbacks that fail
   * verification per client IP (notifyIp): an IP over that limit is answered 429 unread until the minute passes.
   */
  rateLimiter?: RateLimiter;
  onCallback?: (provider: Provider, result: CallbackResult, req: Request) => void;
};

export function paymentsRouter(deps: PaymentsRouterDeps): Router {
  const router = express.Router();
  const publicUrl = (deps.publicUrl ?? "").replace(/\/+$/, "");
  const json = express.json({ limit: "16kb" });
  const callbacks = deps.callbackAdmission;
  const callbackHandler = createCallbackHandler(deps.db);

  router.post("/v1/orders", json, async (req, res) => {
    const input = createOrderRequest.parse(req.body ?? {});
    // each order is a real trade at the gateway, under the merchant's quotas and our circuit breaker: one client
    // must not be able to spend them for everyone (an idempotent retry of an existing order is counted too)
    const refusal = await deps.rateLimiter?.consume({ orderIp: clientKey(req.ip), orderAccount: input.account });
    if (refusal) {
      res.setHeader("retry-after", String(refusal.retryAfterSeconds));
      return sendProblem(res, 429, "rate_limited", `too many top-up orders for this ${refusal.scope === "orderIp" ? "client" : "account"} (at most ${refusal.limit} a minute); retry in ${refusal.retryAfterSeconds} s`, {
        scope: refusal.scope === "orderIp" ? "ip" : "account",
        retryAfterSeconds: refusal.retryAfterSeconds,
      });
    }
    const order = await createOrder(deps, { ...input, clientIp: payerClientIp(req.ip) });
    const view = orderView(order);
    const identification = deps.gateways.get(order.provider)?.payerIdentification;
    if (order.flow === "jsapi" && order.status === "created" && identification) {
      // the payer's openid first: WeChat's OAuth, back to our callback with a state bound to this order and browser
      const nonce = newBrowserNonce();
      const secure = publicUrl.startsWith("https:") ? "; Secure" : "";
      res.setHeader("set-cookie", `${OAUTH_COOKIE}=${nonce}; Path=${OAUTH_CALLBACK_PATH}; Max-Age=${OAUTH_STATE_TTL_SECONDS}; HttpOnly; SameSite=Lax${secure}`);
      view.oauthUrl = identification.authorizeUrl(`${publicUrl}${OAUTH_CALLBACK_PATH}`, signOAuthState(identification.stateKey, order.id, nonce));
    }
    res.status(201).json(view);
  });

  // WeChat's OAuth sends the payer's browser back here with ?code=&state=: the openid makes the JSAPI trade, and the
  // browser goes on to the checkout, which asks WeixinJSBridge to pay. Nothing here credits anything.
  router.get(OAUTH_CALLBACK_PATH, async (req, res) => {
    const identification = deps.gateways.get("wechat")?.payerIdentification;
    if (!identification) throw new PaymentInputError("WeChat Pay JSAPI is not enabled on this server");
    const code = typeof req.query.code === "string" ? req.query.code : undefined;
    const state = typeof req.query.state === "string" ? req.query.state : undefined;
    if (!state) throw new PaymentInputError("state is missing: this is not WeChat's OAuth answer to one of our payments");
    const check = checkOAuthState(identification.stateKey, state, readCookie(req.headers.cookie, OAUTH_COOKIE));
    if (!check.ok) throw new PaymentInputError(check.problem);
    if (!code) throw new PaymentInputError("code is missing: WeChat did not authorize the payer");
    const order = await getOrder(deps.db, check.orderId);
    const back = `${publicUrl}/checkout?account=${order.account}&order=${order.id}`;
    // WeChat's browser may load this URL twice with the same code: the second finds the trade made
    if (order.status === "created") {
      try {
        await completeJsapiOrder(deps, order, await identification.openIdFor(code));
      } catch (error) {
        const now = await findOrder(deps.db, order.id);
        if (now?.status !== "pending") throw error;
      }
    }
    res.setHeader("set-cookie", `${OAUTH_COOKIE}=; Path=${OAUTH_CALLBACK_PATH}; Max-Age=0; HttpOnly; SameSite=Lax`);
    res.redirect(303, back);
  });

  router.get("/v1/orders/:id", async (req, res) => {
    const id = String(req.params.id);
    if (!orderIdSchema.safeParse(id).success) throw new PaymentInputError(`${id} is not an order id`);
    res.json(orderView(await getOrder(deps.db, id)));
  });

  // The raw body is what the signature covers: parse nothing before verification.
  const raw = express.text({ type: () => true, limit: "64kb" });
  // when the request reached us, before its body is read: its wait for admission counts from here
  const arrived: RequestHandler = (_req, res, next) => {
    res.locals.arrivedAt = Date.now();
    next();
  };
  for (const provider of PROVIDERS) {
    router.post(`/v1/payments/${provider}/notify`, arrived, raw, async (req, res) => {
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
      const arrivedAt = res.locals.arrivedAt as number;
      const running = callbacks.run(() => callbackHandler.handle(gateway, { headers: req.headers, rawBody }), arrivedAt);
      // the gateway stops waiting (WeChat Pay after 5 s) and counts the delivery failed: answer the failure reply
      // before that, and let the work finish — a credit that commits later is found by the redelivery, which is
      // acknowledged as already credited (the ledger credits an order once, however often it is delivered)
      let timer: NodeJS.Timeout | undefined;
      const late = new Promise<"late">((resolve) => (timer = setTimeout(() => resolve("late"), arrivedAt + deps.callbackAnswerWithinMs - Date.now())));
      let handled: Awaited<ReturnType<typeof callbacks.run<CallbackResult>>> | "late";
      try {
        handled = await Promise.race([running, late]);
      } catch (error) {
        if (!isDatabaseUnavailable(error)) throw error;
        // nothing was credited or stored: the gateway's failure reply makes it retry on its schedule
        const down = gateway.failureReply("temporarily unavailable, retry later");
        res.status(503).type(down.contentType).send(down.body);
        return;
      } finally {
        clearTimeout(timer);
      }
      if (handled === "late") {
        running.then(
          (r) => r.admitted && deps.onCallback?.(provider, r.result, req),
          (error: unknown) => req.log.warn({ err: error, provider }, "a callback answered late failed afterwards; the gateway redelivers it"),
        );
        const slow = gateway.failureReply("still processing, retry later");
        res.status(503).type(slow.contentType).send(slow.body);
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
    const input = refundRequest.parse(req.body ?? {});
    const refund = await requestRefund(deps, input);
    res.status(201).json(refundView(refund));
  });

  router.get("/v1/refunds/:id", deps.requireAdmin, async (req, res) => {
    res.json(refundView(await getRefund(deps.db, String(req.params.id))));
  });

  return router;
}

// ---- OpenAPI ------------------------------------------------------------------------------------------------

const outcomes = (acknowledged: boolean): string =>
  Object.entries(CALLBACK_OUTCOMES)
    .filter(([, o]) => o.acknowledged === acknowledged)
    .map(([name, o]) => `\`${name}\` (${o.when})`)
    .join(", ");

const NOTIFY_COMMON =
  "Verified (signature, merchant ids) before anything is read; processed at most CALLBACK_CONCURRENCY at once per server process (fewer while sponsorship requests are served and the event loop runs late: CALLBACK_YIELD_LAG_MS), and one that found no free slot by CALLBACK_MAX_WAIT_MS after it arrived is answered the gateway's failure reply with 503 then (nothing read or stored; the gateway retries). Every callback is stored with its outcome. " +
  `Acknowledged with the gateway's success reply: ${outcomes(true)}. Answered the failure reply, so the gateway retries: ${outcomes(false)}. The raw body is read whatever the Content-Type (at most 64 KiB). ` +
  "A callback whose signature does not verify is kept with at most 4 KiB of its body and a few headers, for UNVERIFIED_CALLBACK_RETENTION_HOURS; a client IP that sends more than RATE_LIMIT_UNVERIFIED_CALLBACKS_IP_PER_MINUTE of them a minute is answered 429 unread until the minute passes. While the database is down the failure reply is answered with 503 (nothing credited or stored; the gateway retries).";

const NOTIFY_PROBLEMS: ProblemCase[] = [
  { status: 413, type: "too_large", when: "the body is larger than 64 KiB" },
  { status: 415, type: "invalid_request", when: "the body's charset or Content-Encoding is not supported" },
  { status: 500, type: "internal", when: "the callback could not be processed (an unexpected error): nothing was credited, and the gateway retries" },
];

const text = (schema: Json): ZodContentObject => ({ "text/plain": { schema } });
const notEnabled = (provider: Provider): ResponseConfig => answer(`${provider} is not enabled on this server`, text({ type: "string", const: `${provider} is not enabled` }));

/** The notify routes, as the loop above registers them: one per provider. */
const NOTIFY: Record<Provider, (registry: ApiRegistry) => void> = {
  alipay: (registry) => {
    const problemAnswers = problems(NOTIFY_PROBLEMS);
    registry.registerPath({
      method: "post",
      path: "/v1/payments/alipay/notify",
      tags: ["payments"],
      operationId: "alipayNotify",
      summary: "Alipay payment notification (notify_url)",
      description: `Alipay's asynchronous notification of a payment (RSA2-signed form). ${NOTIFY_COMMON}`,
      request: { body: { required: true, content: { "application/x-www-form-urlencoded": { schema: alipayNotification } } } },
      responses: {
        "200": answer("Alipay's reply: exactly `success` when acknowledged; `fail` when refused (Alipay retries on anything but `success`)", text({ type: "string", enum: ["success", "fail"] })),
        "404": notEnabled("alipay"),
        "429": answer("this client IP sent too many callbacks that do not verify: `fail`, unread", text({ type: "string", const: "fail" })),
        "503": answer("over capacity, or the database is down: `fail`, Alipay retries later", text({ type: "string", const: "fail" })),
        ...problemAnswers,
      },
    });
  },
  wechat: (registry) => {
    const problemAnswers = problems(NOTIFY_PROBLEMS);
    const internal = problemAnswers["500"]!;
    registry.registerPath({
      method: "post",
      path: "/v1/payments/wechat/notify",
      tags: ["payments"],
      operationId: "wechatNotify",
      summary: "WeChat Pay payment notification (notify_url)",
      description: `WeChat Pay v3's notification of a payment: signed with the platform certificate (Wechatpay-* headers), its resource encrypted with our APIv3 key (AEAD_AES_256_GCM). ${NOTIFY_COMMON}`,
      request: { headers: wechatNotificationHeaders, body: { required: true, content: { "application/json": { schema: wechatNotification } } } },
      responses: {
        "204": answer("acknowledged (WeChat Pay's success reply: no body)"),
        "404": notEnabled("wechat"),
        "429": answer("this client IP sent too many callbacks that do not verify; unread", { "application/json": { schema: wechatBlockedReply } }),
        "503": answer("over capacity, or the database is down; WeChat Pay retries later", { "application/json": { schema: wechatBusyReply } }),
        ...problemAnswers,
        // WeChat Pay's failure reply is a 500 too: the status of an internal problem, with another content type
        "500": {
          ...internal,
          description: `Refused: WeChat Pay's failure reply (application/json; it retries). Or ${String(internal.description)}`,
          content: { "application/json": { schema: wechatFailReply }, ...internal.content },
        },
      },
    });
  },
};

/** The OpenAPI paths of `paymentsRouter`. */
export function registerPaymentsPaths(registry: ApiRegistry): void {
  registry.registerPath({
    method: "post",
    path: "/v1/orders",
    tags: ["payments"],
    operationId: "createOrder",
    summary: "Create a top-up order",
    description:
      "Creates the order and the gateway trade behind it, and answers what the payer pays with: a QR code (flow qr), a page URL (page, wap, h5), or, for jsapi, the OAuth URL that learns the payer's openid first (the trade is made on the way back, and GET /v1/orders/{id} then carries jsapiParams). The same idempotencyKey always returns the same order (a crashed attempt is finished); with another flow it is 409. The account is credited only when the gateway's verified notification (or the reconciler's query) says paid: a payer coming back from the gateway's page, or WeixinJSBridge's ok, credits nothing.",
    request: { body: jsonRequest(createOrderRequest) },
    responses: {
      "201": jsonAnswer("the order (an existing one, for a repeated idempotencyKey)", orderSchema),
      ...problems([
        {
          status: 400,
          type: "invalid_request",
          when: "the body does not match the schema, the provider is not enabled, the flow is not one of the provider's or not enabled on the server, or amountFen is outside the server's limits",
        },
        ...jsonBody("16 KiB"),
        { status: 409, type: "conflict", when: "idempotencyKey was already used for an order with other parameters, or paid by another flow (`orderId` names it, `flow` its flow)" },
        { status: 429, type: "rate_limited", when: "too many orders a minute from this client IP or for this account (RATE_LIMIT_ORDERS_*): each is a real gateway trade" },
        { status: 502, type: "gateway_error" },
        { status: 503, type: "gateway_unavailable" },
        INTERNAL,
      ]),
    },
  });
  registry.registerPath({
    method: "get",
    path: "/v1/orders/{id}",
    tags: ["payments"],
    operationId: "getOrder",
    summary: "An order",
    description: "Poll it to learn when the order is paid.",
    request: { params: orderParams },
    responses: {
      "200": jsonAnswer("the order", orderSchema),
      ...problems([{ status: 400, type: "invalid_request", when: "the id is not an order id" }, { ...NOT_FOUND, when: "no such order" }, INTERNAL]),
    },
  });
  registry.registerPath({
    method: "get",
    path: OAUTH_CALLBACK_PATH,
    tags: ["payments"],
    operationId: "wechatOAuthCallback",
    summary: "WeChat OAuth2 (snsapi_base) redirect_uri of a JSAPI order",
    description:
      "WeChat sends the payer's browser here after its authorize page (the order's `oauthUrl`). The state must be the one made for this order in this browser (an HMAC over the order id, an expiry and the HttpOnly cookie set with the order's answer), so nobody's openid can be tied to another's order. The one-time code is exchanged for the payer's openid (WECHAT_APP_SECRET), the JSAPI trade is made (prepay_id), and the browser is sent to the checkout, which asks WeixinJSBridge to pay. Nothing is credited here.",
    request: {
      query: z.object({ code: z.string().optional().describe("WeChat's one-time code (5 minutes)"), state: z.string().describe("ours, from oauthUrl") }),
    },
    responses: {
      "303": answer("to the checkout page of the order (`/checkout?account=…&order=…`)"),
      ...problems([
        { status: 400, type: "invalid_request", when: "JSAPI is not enabled, the state is missing, not ours, expired or not this browser's, or the code is missing, invalid or already used" },
        { ...NOT_FOUND, when: "no such order" },
        { status: 502, type: "gateway_error" },
        { status: 503, type: "gateway_unavailable", when: "WeChat's OAuth or WeChat Pay is unreachable or failing" },
        INTERNAL,
      ]),
    },
  });
  for (const provider of PROVIDERS) NOTIFY[provider](registry);
  registry.registerPath({
    method: "post",
    path: "/v1/refunds",
    tags: ["admin"],
    operationId: "requestRefund",
    summary: "Refund unspent quota of a paid order (admin)",
    description:
      "Debits the refund from the account's available quota and records it before asking the gateway, so the fen cannot be spent meanwhile. A refund the gateway has not confirmed stays `requested` and is finished by the reconciler; one the gateway refuses becomes `failed` and gives the quota back. The same idempotencyKey returns the same refund.",
    security: ADMIN_SECURITY,
    request: { body: jsonRequest(refundRequest) },
    responses: {
      "201": jsonAnswer("the refund", refundSchema),
      ...problems([
        ...ADMIN,
        { status: 400, type: "invalid_request", when: "the body does not match the schema, or amountFen is not positive" },
        ...jsonBody("16 KiB"),
        { ...NOT_FOUND, when: "no such order" },
        {
          status: 409,
          type: "conflict",
          when: "the order is not paid; nothing is left to refund; the amount exceeds the order's unrefunded part or the account's available balance (`refundableFen`, `availableFen`, `requestedFen`); idempotencyKey already used for another refund (`refundId`)",
        },
        { status: 409, type: "insufficient_balance" },
        INTERNAL,
      ]),
    },
  });
  registry.registerPath({
    method: "get",
    path: "/v1/refunds/{id}",
    tags: ["admin"],
    operationId: "getRefund",
    summary: "A refund (admin)",
    security: ADMIN_SECURITY,
    request: { params: refundParams },
    responses: {
      "200": jsonAnswer("the refund", refundSchema),
      ...problems([...ADMIN, { ...NOT_FOUND, when: "no such refund" }, INTERNAL]),
    },
  });
}
