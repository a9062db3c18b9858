/** Top-up orders and refunds: what `POST /v1/orders`, `GET /v1/orders/{id}` and the refund routes take and answer. */
import { accountSchema, dateTimeOut, fenOut, fenSchema, idempotencyKeySchema, lowerAddressOut, nullableDateTimeOut, orderIdSchema, refundIdSchema } from "./primitives";
import { z } from "./zod";

/** The payment gateways (payments/gateway.ts's Provider). */
export const providerSchema = z.enum(["alipay", "wechat"]);
export const orderStatusSchema = z.enum(["created", "pending", "paid", "closed"]);
export const refundStatusSchema = z.enum(["requested", "succeeded", "failed"]);

export const createOrderRequest = z
  .strictObject({
    account: accountSchema.describe("the account credited when the order is paid"),
    amountFen: fenSchema.describe("between the server's ORDER_MIN_FEN and ORDER_MAX_FEN"),
    provider: providerSchema.describe("which gateway; it must be enabled on the server"),
    idempotencyKey: idempotencyKeySchema.optional(),
  })
  .openapi("CreateOrderRequest");

export const orderSchema = z
  .object({
    id: orderIdSchema,
    account: lowerAddressOut,
    provider: providerSchema,
    amountFen: fenOut,
    status: orderStatusSchema.describe("created (the gateway trade is not made yet), pending (awaiting payment), paid (credited), closed (expired unpaid)"),
    qrCode: z.string().optional().describe("the QR code payload to show the payer (Alipay qr_code, WeChat Pay code_url), once the trade exists"),
    payUrl: z.url().optional().describe("a payment page URL, for gateways that answer one instead of a QR code"),
    expiresAt: dateTimeOut.describe("the gateway stops accepting payment after this"),
    paidAt: nullableDateTimeOut,
    refundedFen: fenOut.describe("refunded or being refunded"),
    createdAt: dateTimeOut,
  })
  .openapi("Order");
export type OrderView = z.input<typeof orderSchema>;

export const orderParams = z.object({ id: orderIdSchema.openapi({ param: { description: "the order id" } }) });

export const refundRequest = z
  .strictObject({
    orderId: orderIdSchema.describe("a paid order"),
    amountFen: fenSchema.optional().describe("positive; by default all that can be refunded: the order's unrefunded part, capped by the account's available balance"),
    idempotencyKey: idempotencyKeySchema.optional(),
    reason: z.string().max(80).optional().describe("passed to the gateway"),
  })
  .openapi("RefundRequest");

export const refundSchema = z
  .object({
    id: refundIdSchema.describe("our refund id (the gateway's idempotency key for it)"),
    orderId: z.string(),
    account: lowerAddressOut,
    amountFen: fenOut,
    status: refundStatusSchema.openapi({
      description: "requested (debited from the quota; the gateway is working on it, or will be asked again by the reconciler), succeeded, failed (the quota is given back)",
    }),
    gatewayRefundNo: z.string().nullable(),
    failureReason: z.string().nullable(),
    createdAt: dateTimeOut,
    updatedAt: dateTimeOut,
  })
  .openapi("Refund");
export type RefundView = z.input<typeof refundSchema>;

export const refundParams = z.object({ id: z.string().openapi({ param: { description: "the refund id", example: "rf0123456789abcdef01234567" } }) });

// ---- The gateways' notifications --------------------------------------------------------------------------
// Their formats are the gateways': the gateway modules verify and read the raw body (nothing is parsed before the
// signature is checked), so these schemas describe what arrives rather than parse it.

export const alipayNotification = z
  .looseObject({
    app_id: z.string(),
    out_trade_no: z.string().describe("our order id"),
    trade_no: z.string(),
    trade_status: z.string().describe("TRADE_SUCCESS / TRADE_FINISHED are paid"),
    total_amount: z.string().describe("yuan, e.g. 15.00"),
    gmt_payment: z.string().optional().describe("Beijing time"),
    sign_type: z.literal("RSA2").optional(),
    sign: z.string(),
  })
  .catchall(z.string())
  .describe("Alipay's notification form; each field once");

export const wechatNotification = z.object({
  id: z.string(),
  create_time: z.string().optional(),
  event_type: z.string().describe("TRANSACTION.SUCCESS for a payment"),
  resource_type: z.string().optional(),
  summary: z.string().optional(),
  resource: z.object({
    algorithm: z.literal("AEAD_AES_256_GCM"),
    ciphertext: z.string().min(1),
    nonce: z.string().min(1),
    associated_data: z.string().optional(),
    original_type: z.string().optional().describe("transaction for a payment"),
  }),
});

const wechatFail = <T extends z.ZodType>(message: T) => z.object({ code: z.literal("FAIL"), message });
export const wechatFailReply = wechatFail(z.string().max(256).describe("why it was refused"));
export const wechatBusyReply = wechatFail(z.enum(["busy, retry later", "temporarily unavailable, retry later"]));
export const wechatBlockedReply = wechatFail(z.literal("too many unverifiable notifications from this address"));

export const wechatNotificationHeaders = z.object({
  "Wechatpay-Serial": z.string().describe("verified with the platform certificate; without it the callback is refused"),
  "Wechatpay-Timestamp": z.string().describe("verified with the platform certificate; without it the callback is refused"),
  "Wechatpay-Nonce": z.string().describe("verified with the platform certificate; without it the callback is refused"),
  "Wechatpay-Signature": z.string().describe("verified with the platform certificate; without it the callback is refused"),
  "Wechatpay-Signature-Type": z.string().optional().describe("WECHATPAY2-SHA256-RSA2048"),
});
