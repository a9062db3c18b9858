/** Top-up orders and refunds: what `POST /v1/orders`, `GET /v1/orders/{id}` and the refund routes take and answer. */
import { accountSchema, dateTimeOut, fenOut, fenSchema, idempotencyKeySchema, lowerAddressOut, nullableDateTimeOut, orderIdSchema, refundIdSchema } from "./primitives";
import { z } from "./zod";

/** The payment gateways (payments/gateway.ts's Provider). */
export const providerSchema = z.enum(["alipay", "wechat"]);
export const orderStatusSchema = z.enum(["created", "pending", "paid", "closed"]);
export const paymentFlowSchema = z.enum(["qr", "page", "wap", "h5", "jsapi"]).openapi("PaymentFlow", {
  description:
    "how the payer pays. Desktop: qr (Alipay precreate / WeChat Pay Native: a QR code), page (Alipay page pay). Phone browser: wap (Alipay 手机网站支付), h5 (WeChat Pay H5). WeChat's own browser: jsapi (WeChat Pay JSAPI, after WeChat's OAuth gives the payer's openid). Alipay has qr, page, wap; WeChat Pay has qr, h5, jsapi; the server enables some of them (ALIPAY_FLOWS, WECHAT_FLOWS; GET /v1/config lists them)",
});
export const refundStatusSchema = z.enum(["requested", "succeeded", "failed"]);

export const createOrderRequest = z
  .strictObject({
    account: accountSchema.describe("the account credited when the order is paid"),
    amountFen: fenSchema.describe("between the server's ORDER_MIN_FEN and ORDER_MAX_FEN"),
    provider: providerSchema.describe("which gateway; it must be enabled on the server"),
    flow: paymentFlowSchema
      .optional()
      .describe(
        "how the payer pays; it must be one of the provider's flows and enabled on the server (else 400). Without it: the provider's default (Alipay's ALIPAY_CHECKOUT, WeChat Pay qr). A retry with the same idempotencyKey and another flow is 409: one order is one gateway trade",
      ),
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
    flow: paymentFlowSchema,
    qrCode: z.string().optional().describe("qr: the QR code payload to show the payer (Alipay qr_code, WeChat Pay code_url), once the trade exists"),
    payUrl: z
      .url()
      .optional()
      .describe("page, wap: the signed Alipay cashier URL to send the browser to; h5: WeChat Pay's h5_url (valid 5 minutes; append &redirect_url=<URL-encoded page> to come back)"),
    oauthUrl: z
      .url()
      .optional()
      .describe(
        "jsapi, while the payer is not known yet (status created): WeChat's OAuth2 snsapi_base authorize URL to send the browser to. Only in the answer to POST /v1/orders, which also sets the cookie the OAuth callback is checked against (same browser only)",
      ),
    jsapiParams: z
      .object({
        appId: z.string(),
        timeStamp: z.string(),
        nonceStr: z.string(),
        package: z.string().describe("prepay_id=…"),
        signType: z.literal("RSA"),
        paySign: z.string().describe("RSA-SHA256 by the merchant key over appId, timeStamp, nonceStr and package, each followed by \\n"),
      })
      .optional()
      .describe("jsapi, once the payer is known (status pending): the parameters for WeixinJSBridge.invoke('getBrandWCPayRequest', …). Its ok is not a credit: poll the order"),
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
    gatewayStatus: z
      .string()
      .nullable()
      .describe("while requested, the gateway's word when it matters: ABNORMAL (WeChat: the payer's bank refused; re-route it in the merchant platform), NOT_ENOUGH / ACQ.SELLER_BALANCE_NOT_ENOUGH (the merchant's balance is short: retried with the same refund id)"),
    succeededAt: nullableDateTimeOut.describe("when the money went back, by the gateway's clock"),
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
