/**
 * The checkout page: an end user tops up the gas quota of a smart account. ?account=0x… from a DApp (or typed),
 * an amount within the server's limits, Alipay or WeChat Pay → the way to pay that fits the device: on a desktop
 * the gateway's QR payload rendered as a QR code (or Alipay page pay's redirect); in a phone's browser Alipay's WAP
 * cashier or WeChat Pay H5; inside WeChat, WeChat Pay JSAPI (WeChat's OAuth, then WeixinJSBridge), while Alipay
 * cannot open there → live status until the callback has credited the quota, then the new balance.
 *
 * Coming back from the gateway (return_url, redirect_url) or WeixinJSBridge's ok only makes the page ask the server
 * again: the server credits on the gateway's verified notification or its own query, never on what a browser says.
 */
import QRCode from "qrcode";
import { type Order, type PublicConfig, api, parseYuan, yuan } from "./api";
import { type Lang, initialLang, t, translatePage } from "./i18n";

const PRESETS_FEN = [1_000, 5_000, 10_000, 50_000];
const POLL_MS = 1_000;

const $ = <T extends HTMLElement>(id: string) => document.getElementById(id) as T;
const form = $<HTMLFormElement>("order-form");
const accountInput = $<HTMLInputElement>("account");
const customInput = $<HTMLInputElement>("custom");
const payButton = $<HTMLButtonElement>("pay");
const status = $<HTMLParagraphElement>("status");
const balance = $<HTMLParagraphElement>("balance");
const again = $<HTMLButtonElement>("again");
const payment = $<HTMLElement>("payment");

let lang: Lang = initialLang();
let config: PublicConfig | undefined;
let amountFen: number | undefined = PRESETS_FEN[0];
let provider: "alipay" | "wechat" = "alipay";
let current: Order | undefined;
let poll: number | undefined;
/** The JSAPI payment sheet was opened for this order already (once automatically; then by the button). */
let bridgeOpenedFor: string | undefined;

type Provider = "alipay" | "wechat";
type Flow = NonNullable<Order["flow"]>;
/** desktop, a phone's browser, or WeChat's in-app browser (its user agent says MicroMessenger). */
type Device = "desktop" | "phone" | "wechat";

function deviceOf(userAgent: string): Device {
  if (/MicroMessenger/i.test(userAgent)) return "wechat";
  return /Android|iPhone|iPad|iPod|Mobile|HarmonyOS/i.test(userAgent) ? "phone" : "desktop";
}
const device = deviceOf(navigator.userAgent);

/**
 * The flow to ask for: on a desktop none (the server's default: QR code, or Alipay page pay); on a phone Alipay
 * WAP or WeChat H5; in WeChat JSAPI. When the server lacks the phone flow, its default (a QR code) still works.
 * "blocked": Alipay inside WeChat, which WeChat does not let open.
 */
function flowFor(p: Provider): Flow | undefined | "blocked" {
  const enabled = config?.flows?.[p] ?? [];
  if (device === "wechat" && p === "alipay") return "blocked";
  const wanted: Flow | undefined = device === "wechat" ? "jsapi" : device === "phone" ? (p === "alipay" ? "wap" : "h5") : undefined;
  return wanted && enabled.includes(wanted) ? wanted : undefined;
}

function showError(id: string, message: string | undefined): void {
  const el = $<HTMLParagraphElement>(id);
  el.textContent = message ?? "";
  el.hidden = !message;
}

function renderChoices(): void {
  const presets = $<HTMLDivElement>("presets");
  presets.replaceChildren(
    ...PRESETS_FEN.filter((fen) => !config || (fen >= Number(config.orders.minFen) && fen <= Number(config.orders.maxFen))).map((fen) => {
      const button = document.createElement("button");
      button.type = "button";
      button.className = "choice";
      button.textContent = `¥${yuan(fen).replace(/\.00$/, "")}`;
      button.setAttribute("aria-pressed", String(amountFen === fen && !customInput.value));
      button.addEventListener("click", () => {
        amountFen = fen;
        customInput.value = "";
        showError("amount-error", undefined);
        renderChoices();
      });
      return button;
    }),
  );
  const providers = $<HTMLDivElement>("providers");
  providers.setAttribute("role", "radiogroup");
  providers.replaceChildren(
    ...(config?.providers ?? ["alipay", "wechat"]).map((p) => {
      const button = document.createElement("button");
      button.type = "button";
      button.className = "choice";
      button.setAttribute("role", "radio");
      button.setAttribute("aria-checked", String(provider === p));
      button.dataset.provider = p;
      button.textContent = t(lang, p === "alipay" ? "checkout.alipay" : "checkout.wechat");
      button.addEventListener("click", () => {
        provider = p;
        renderChoices();
      });
      return button;
    }),
  );
  $("in-wechat").hidden = flowFor(provider) !== "blocked";
}

async function copyLink(): Promise<void> {
  const link = location.href;
  try {
    await navigator.clipboard.writeText(link);
  } catch {
    // WeChat's browser may refuse the clipboard API: select a text field holding the link instead
    const field = document.createElement("textarea");
    field.value = link;
    field.setAttribute("aria-label", "link");
    document.body.append(field);
    field.select();
    document.execCommand("copy");
    field.remove();
  }
  $("copied").textContent = t(lang, "checkout.copied");
}

function setStatus(text: string, ok = false): void {
  status.textContent = text;
  status.classList.toggle("ok", ok);
}

function validAccount(): string | undefined {
  const value = accountInput.value.trim();
  return /^0x[0-9a-fA-F]{40}$/.test(value) ? value : undefined;
}

function chosenAmount(): number | undefined {
  if (!customInput.value.trim()) return amountFen;
  const fen = parseYuan(customInput.value);
  if (fen === undefined || !config) return fen;
  return fen >= Number(config.orders.minFen) && fen <= Number(config.orders.maxFen) ? fen : undefined;
}

async function submit(event: SubmitEvent): Promise<void> {
  event.preventDefault();
  const account = validAccount();
  const fen = chosenAmount();
  showError("account-error", account ? undefined : t(lang, "error.account"));
  showError("amount-error", fen ? undefined : t(lang, "error.amount", { min: yuan(config?.orders.minFen ?? 100), max: yuan(config?.orders.maxFen ?? 500_000) }));
  showError("form-error", undefined);
  if (!account) return accountInput.focus();
  if (!fen) return customInput.focus();
  const flow = flowFor(provider);
  if (flow === "blocked") {
    showError("form-error", t(lang, "checkout.alipayInWechat"));
    return;
  }
  payButton.disabled = true;
  try {
    const request = { account, amountFen: fen, provider, ...(flow ? { flow } : {}), idempotencyKey: `checkout-${crypto.randomUUID()}` };
    const order = await api.createOrder(request);
    // kept for this tab: asking again with the same key gets a fresh h5_url for the same order (it lives 5 minutes)
    sessionStorage.setItem(`checkout-request-${order.id}`, JSON.stringify(request));
    await showOrder(order, { fresh: true });
  } catch (error) {
    showError("form-error", error instanceof TypeError ? t(lang, "error.network") : (error as Error).message);
  } finally {
    payButton.disabled = false;
  }
}

/** The page the gateway sends the payer back to: this checkout, showing this order. */
function backHere(order: Order): string {
  return `${location.origin}${location.pathname}?account=${order.account}&order=${order.id}`;
}

/** Where the browser goes to pay a phone flow's order: WAP's cashier URL, H5's h5_url + our redirect_url, JSAPI's OAuth. */
function payPageOf(order: Order): string | undefined {
  if (order.flow === "jsapi") return order.oauthUrl;
  if (order.flow === "h5" && order.payUrl) return `${order.payUrl}&redirect_url=${encodeURIComponent(backHere(order))}`;
  if (order.flow === "wap") return order.payUrl;
  return undefined;
}

async function showOrder(order: Order, options: { fresh?: boolean } = {}): Promise<void> {
  current = order;
  form.hidden = true;
  payment.hidden = false;
  const providerName = t(lang, order.provider === "alipay" ? "checkout.alipay" : "checkout.wechat");
  const scan = order.flow === "qr" || order.flow === "page";
  $("payment-title").textContent = t(lang, scan ? "checkout.scan" : "checkout.payWith", { provider: providerName, amount: yuan(order.amountFen) });
  $("order-id").textContent = order.id;
  $("expires").textContent = t(lang, "checkout.expiresAt", { time: new Date(order.expiresAt).toLocaleTimeString(lang === "zh" ? "zh-CN" : "en") });
  const link = $<HTMLAnchorElement>("payer-link");
  const canvas = $<HTMLCanvasElement>("qr");
  const jsapiPay = $<HTMLButtonElement>("jsapi-pay");
  jsapiPay.hidden = true;
  link.hidden = false;
  const payPage = payPageOf(order);
  if (!scan) {
    canvas.hidden = true;
    link.removeAttribute("target");
    if (order.flow === "jsapi" && order.jsapiParams) {
      link.hidden = true;
      jsapiPay.hidden = false;
      if (bridgeOpenedFor !== order.id && order.status === "pending") {
        bridgeOpenedFor = order.id;
        void payInWechat(order);
      }
    } else if (payPage) {
      link.href = payPage;
      link.textContent = t(lang, options.fresh ? (order.provider === "alipay" ? "checkout.continueAlipay" : "checkout.continueWechat") : "checkout.payAgain");
    } else {
      link.hidden = true;
    }
  } else if (order.qrCode) {
    await QRCode.toCanvas(canvas, order.qrCode, { width: 240, margin: 1 });
    canvas.hidden = false;
    link.href = order.qrCode;
    link.textContent = t(lang, "checkout.openPayer");
  } else if (order.payUrl) {
    canvas.hidden = true;
    link.href = order.payUrl;
    link.textContent = t(lang, "checkout.redirect");
    link.removeAttribute("target");
  }
  // back from the gateway's page: the gateway said nothing we trust; the server's order does
  const returned = !scan && !options.fresh && order.status === "pending" && order.flow !== "jsapi";
  setStatus(t(lang, returned ? "checkout.confirming" : "checkout.waiting"));
  history.replaceState(null, "", `?account=${order.account}&order=${order.id}${new URLSearchParams(location.search).get("lang") ? `&lang=${lang}` : ""}`);
  schedulePoll();
  // a phone flow's order just made: on to the gateway (the history entry above brings the payer back to it)
  if (options.fresh && payPage) location.assign(payPage);
}

/** Back from WeChat H5 unpaid: its h5_url may be older than its 5 minutes, so the same request again gets a fresh one. */
async function payAgain(event: MouseEvent): Promise<void> {
  const order = current;
  const stored = order?.flow === "h5" && order.status === "pending" ? sessionStorage.getItem(`checkout-request-${order.id}`) : null;
  if (!order || !stored) return;
  event.preventDefault();
  try {
    const fresh = await api.createOrder(JSON.parse(stored) as Parameters<typeof api.createOrder>[0]);
    const page = payPageOf(fresh);
    if (page) location.assign(page);
  } catch (error) {
    setStatus(error instanceof TypeError ? t(lang, "error.network") : (error as Error).message);
  }
}

/** WeixinJSBridge, once WeChat's browser has it (in sandbox mode the simulator's stand-in, which /v1/config names). */
async function weixinJSBridge(): Promise<WeixinJSBridge | undefined> {
  if (window.WeixinJSBridge) return window.WeixinJSBridge;
  const ready = new Promise<void>((resolve) => document.addEventListener("WeixinJSBridgeReady", () => resolve(), { once: true }));
  // never in production: the server names a stand-in only in sandbox mode
  if (config?.sandbox && config.wechatJsBridgeShim && !document.querySelector("script[data-bridge]")) {
    const script = document.createElement("script");
    script.src = config.wechatJsBridgeShim;
    script.dataset.bridge = "sandbox";
    document.head.append(script);
  }
  await Promise.race([ready, new Promise((resolve) => setTimeout(resolve, 5_000))]);
  return window.WeixinJSBridge;
}

/** Opens WeChat's payment sheet. Its ok is not a credit: the page keeps asking the server about the order. */
async function payInWechat(order: Order): Promise<void> {
  const bridge = await weixinJSBridge();
  if (!bridge || !order.jsapiParams) {
    setStatus(t(lang, "checkout.noBridge"));
    return;
  }
  bridge.invoke("getBrandWCPayRequest", order.jsapiParams, (answer) => {
    const outcome = answer.err_msg.split(":")[1];
    if (current?.id !== order.id || current.status !== "pending") return;
    setStatus(t(lang, outcome === "ok" ? "checkout.confirming" : outcome === "cancel" ? "checkout.cancelled" : "checkout.bridgeFailed"));
  });
}

type WeixinJSBridge = { invoke: (name: "getBrandWCPayRequest", params: object, callback: (answer: { err_msg: string }) => void) => void };
declare global {
  interface Window {
    WeixinJSBridge?: WeixinJSBridge;
  }
}

function schedulePoll(): void {
  window.clearTimeout(poll);
  poll = window.setTimeout(() => void refresh(), POLL_MS);
}

async function refresh(): Promise<void> {
  if (!current) return;
  try {
    current = await api.order(current.id);
  } catch {
    return schedulePoll(); // a blip: keep polling
  }
  if (current.status === "paid") {
    payment.hidden = true;
    $("jsapi-pay").hidden = true;
    setStatus(t(lang, "checkout.paid"), true);
    const view = await api.account(current.account).catch(() => undefined);
    if (view) balance.textContent = t(lang, "checkout.balance", { available: yuan(view.availableFen) });
    again.hidden = false;
    return;
  }
  if (current.status === "closed") {
    payment.hidden = true;
    setStatus(t(lang, "checkout.expired"));
    again.hidden = false;
    return;
  }
  schedulePoll();
}

function startAgain(): void {
  window.clearTimeout(poll);
  current = undefined;
  form.hidden = false;
  payment.hidden = true;
  again.hidden = true;
  balance.textContent = "";
  setStatus("");
  history.replaceState(null, "", accountInput.value ? `?account=${accountInput.value.trim()}` : location.pathname);
  payButton.focus();
}

function applyLang(): void {
  translatePage(lang);
  renderChoices();
  if (current) void showOrder(current);
}

async function main(): Promise<void> {
  const params = new URLSearchParams(location.search);
  accountInput.value = params.get("account") ?? "";
  translatePage(lang);
  renderChoices();
  $<HTMLButtonElement>("lang").addEventListener("click", () => {
    lang = lang === "zh" ? "en" : "zh";
    applyLang();
  });
  form.addEventListener("submit", (e) => void submit(e));
  $("copy-link").addEventListener("click", () => void copyLink());
  $("jsapi-pay").addEventListener("click", () => current && void payInWechat(current));
  $("payer-link").addEventListener("click", (event) => void payAgain(event));
  again.addEventListener("click", startAgain);
  customInput.addEventListener("input", () => renderChoices());
  try {
    config = await api.config();
    renderChoices();
  } catch {
    showError("form-error", t(lang, "error.network"));
  }
  const orderId = params.get("order");
  if (orderId) {
    // reopened (or refreshed) while paying: pick the order up again
    const order = await api.order(orderId).catch(() => undefined);
    if (order) await showOrder(order);
  }
}

void main();
