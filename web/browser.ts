/**
 * Browser-test support: Debian's Chromium (installed by .ci/run through apt; Playwright downloads nothing)
 * driven by playwright-core. Which Chromium, and the browser tests' `{ skip }` without one, are in
 * devtools/testing/services.ts. Screenshots go to test-results/ (CI keeps them as artifacts).
 */
import { mkdirSync } from "node:fs";
import path from "node:path";
import { type Browser, type Page, chromium } from "playwright-core";
import { chromiumPath, skipWithoutChromium } from "../devtools/testing/services";

export const SCREENSHOTS = path.resolve(__dirname, "..", "test-results", "screenshots");

export async function launchBrowser(): Promise<Browser> {
  const executablePath = chromiumPath();
  if (!executablePath) throw new Error(`no Chromium found (${skipWithoutChromium})`);
  return chromium.launch({ executablePath, args: ["--no-sandbox", "--disable-dev-shm-usage"] });
}

/** Collects console errors and uncaught page errors: a page under test must produce none. */
export function watchErrors(page: Page): string[] {
  const errors: string[] = [];
  page.on("console", (m) => {
    if (m.type() === "error") errors.push(`console: ${m.text()}`);
  });
  page.on("pageerror", (e) => errors.push(`page: ${e.message}`));
  return errors;
}

export async function screenshot(page: Page, name: string): Promise<string> {
  mkdirSync(SCREENSHOTS, { recursive: true });
  const file = path.join(SCREENSHOTS, `${name}.png`);
  await page.screenshot({ path: file, fullPage: true });
  return file;
}

/**
 * Accessibility basics a test can check without a library: every form control has a label, every image-like
 * element a text alternative, and no control is unreachable by keyboard (tabindex < 0 on a visible control).
 */
export async function accessibilityProblems(page: Page): Promise<string[]> {
  // a string, not a function: the test runner's transpiler would wrap named functions in helpers the page lacks
  return page.evaluate(`(() => {
    const problems = [];
    const visible = (el) => el.offsetParent !== null;
    for (const el of document.querySelectorAll("input, select, textarea")) {
      if (!visible(el)) continue;
      const labelled = (el.id && document.querySelector('label[for="' + el.id + '"]')) || el.getAttribute("aria-label") || el.getAttribute("aria-labelledby") || el.closest("label");
      if (!labelled) problems.push("unlabelled " + el.tagName.toLowerCase() + "#" + el.id);
    }
    for (const el of document.querySelectorAll("img, canvas[role=img]")) {
      if (visible(el) && !el.getAttribute("alt") && !el.getAttribute("aria-label")) problems.push("no text alternative: " + el.tagName.toLowerCase() + "#" + el.id);
    }
    for (const el of document.querySelectorAll("button, a[href], input")) {
      if (visible(el) && el.tabIndex < 0) problems.push("not keyboard-reachable: " + el.tagName.toLowerCase() + "#" + el.id);
    }
    for (const el of document.querySelectorAll("button")) {
      if (visible(el) && !(el.textContent || "").trim() && !el.getAttribute("aria-label")) problems.push("button without a name: #" + el.id);
    }
    return problems;
  })()`);
}

/** WCAG contrast ratio of the first element matching `selector` against its nearest opaque background. */
export async function contrastRatio(page: Page, selector: string): Promise<number> {
  return page.evaluate(`(() => {
    const el = document.querySelector(${JSON.stringify(selector)});
    const parse = (c) => (c.match(/[\\d.]+/g) || []).map(Number);
    const channel = (v) => { const s = v / 255; return s <= 0.03928 ? s / 12.92 : Math.pow((s + 0.055) / 1.055, 2.4); };
    const luminance = (c) => 0.2126 * channel(c[0]) + 0.7152 * channel(c[1]) + 0.0722 * channel(c[2]);
    let node = el;
    let background = [255, 255, 255];
    while (node) {
      const c = parse(getComputedStyle(node).backgroundColor);
      if (c.length >= 3 && (c[3] === undefined || c[3] > 0.9)) { background = c; break; }
      node = node.parentElement;
    }
    const fg = luminance(parse(getComputedStyle(el).color));
    const bg = luminance(background);
    return (Math.max(fg, bg) + 0.05) / (Math.min(fg, bg) + 0.05);
  })()`);
}
