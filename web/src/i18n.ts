/** The pages' words in Chinese and English. The language comes from ?lang=, then the browser; a toggle switches it. */
export type Lang = "zh" | "en";

const dictionary = {
  "checkout.title": { zh: "充值燃气额度", en: "Top up gas quota" },
  "checkout.lead": {
    zh: "用支付宝或微信支付为你的智能账户充值，DApp 会用这笔额度替你支付链上燃气费。",
    en: "Pay with Alipay or WeChat Pay; the DApp uses this quota to pay your on-chain gas.",
  },
  "checkout.account": { zh: "智能账户地址", en: "Smart account address" },
  "checkout.accountHint": { zh: "以 0x 开头的 40 位十六进制地址", en: "0x followed by 40 hex characters" },
  "checkout.amount": { zh: "金额", en: "Amount" },
  "checkout.custom": { zh: "其他金额（元）", en: "Other amount (¥)" },
  "checkout.provider": { zh: "支付方式", en: "Pay with" },
  "checkout.alipay": { zh: "支付宝", en: "Alipay" },
  "checkout.wechat": { zh: "微信支付", en: "WeChat Pay" },
  "checkout.pay": { zh: "去支付", en: "Pay" },
  "checkout.scan": { zh: "请用{provider}扫码支付 ¥{amount}", en: "Scan with {provider} to pay ¥{amount}" },
  "checkout.openPayer": { zh: "在本设备上打开支付页面", en: "Open the payment page on this device" },
  "checkout.redirect": { zh: "前往支付宝付款", en: "Continue to Alipay" },
  "checkout.waiting": { zh: "等待付款…", en: "Waiting for payment…" },
  "checkout.paid": { zh: "已付款，额度已到账", en: "Paid: the quota is credited" },
  "checkout.balance": { zh: "可用额度：¥{available}", en: "Available quota: ¥{available}" },
  "checkout.expired": { zh: "订单已过期或已取消", en: "The order expired or was cancelled" },
  "checkout.again": { zh: "重新充值", en: "Start again" },
  "checkout.expiresAt": { zh: "请在 {time} 前完成支付", en: "Pay before {time}" },
  "checkout.order": { zh: "订单号", en: "Order" },
  "checkout.payWith": { zh: "用{provider}支付 ¥{amount}", en: "Pay ¥{amount} with {provider}" },
  "checkout.continueAlipay": { zh: "前往支付宝付款", en: "Continue to Alipay" },
  "checkout.continueWechat": { zh: "前往微信支付", en: "Continue to WeChat Pay" },
  "checkout.payAgain": { zh: "重新打开支付页面", en: "Open the payment page again" },
  "checkout.jsapiPay": { zh: "微信支付", en: "Pay with WeChat" },
  "checkout.confirming": { zh: "正在确认付款…（以支付平台的到账通知为准）", en: "Confirming the payment… (the gateway's own confirmation decides)" },
  "checkout.cancelled": { zh: "付款已取消，可重新支付", en: "Payment cancelled; you can pay again" },
  "checkout.bridgeFailed": { zh: "微信支付未能发起付款，请重试", en: "WeChat Pay could not start the payment; try again" },
  "checkout.noBridge": { zh: "请在微信中打开本页面以使用微信支付", en: "Open this page in WeChat to pay with WeChat Pay" },
  "checkout.alipayInWechat": {
    zh: "微信内无法打开支付宝：请点右上角「···」选择「在浏览器打开」，或复制链接到手机浏览器中打开。",
    en: "Alipay cannot open inside WeChat: tap ··· at the top right and choose “Open in browser”, or copy the link into your phone's browser.",
  },
  "checkout.copyLink": { zh: "复制链接", en: "Copy link" },
  "checkout.copied": { zh: "链接已复制", en: "Link copied" },
  "error.account": { zh: "请输入有效的账户地址（0x + 40 位十六进制）", en: "Enter a valid address (0x and 40 hex characters)" },
  "error.amount": { zh: "金额须在 ¥{min} 到 ¥{max} 之间，最多两位小数", en: "The amount must be between ¥{min} and ¥{max}, at most 2 decimals" },
  "error.network": { zh: "无法连接服务器，请稍后再试", en: "The server cannot be reached; try again" },
  "lang.switch": { zh: "English", en: "中文" },
} satisfies Record<string, Record<Lang, string>>;

export type Key = keyof typeof dictionary;

export function initialLang(): Lang {
  const asked = new URLSearchParams(location.search).get("lang");
  if (asked === "zh" || asked === "en") return asked;
  return navigator.language.toLowerCase().startsWith("zh") ? "zh" : "en";
}

export function t(lang: Lang, key: Key, values: Record<string, string> = {}): string {
  return dictionary[key][lang].replace(/\{(\w+)\}/g, (_, name: string) => values[name] ?? `{${name}}`);
}

/** Fills every element with data-i18n="key" (text) and data-i18n-placeholder="key". */
export function translatePage(lang: Lang): void {
  document.documentElement.lang = lang === "zh" ? "zh-CN" : "en";
  for (const el of document.querySelectorAll<HTMLElement>("[data-i18n]")) el.textContent = t(lang, el.dataset.i18n as Key);
  for (const el of document.querySelectorAll<HTMLInputElement>("[data-i18n-placeholder]")) el.placeholder = t(lang, el.dataset.i18nPlaceholder as Key);
}
