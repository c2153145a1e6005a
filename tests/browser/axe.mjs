// Accessibility check of one screen with axe-core (npm, tests/support): WCAG 2.0 and 2.1, levels A and AA.
// Any violation fails the flow, naming the rule, the elements and what is wrong. The source is evaluated
// through the DevTools protocol, so the broker's Content-Security-Policy (no inline scripts) stays on.
import fs from 'node:fs';
import path from 'node:path';
import { createRequire } from 'node:module';

const require = createRequire(path.join(process.env.TEST_OIDC_PROVIDER_DIR || path.resolve('tests/support'), 'package.json'));
const source = fs.readFileSync(require.resolve('axe-core/axe.min.js'), 'utf8');

/** Runs axe in a page or frame (a Playwright `Page` or `Frame`); throws on any violation. */
export async function axeCheck(target, screen) {
  await target.evaluate(source);
  const result = await target.evaluate(() => window.axe.run(document, { runOnly: ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa'] }));
  if (result.violations.length) {
    const lines = result.violations.map((v) => `${v.id} (${v.impact}): ${v.nodes.map((n) => `${n.target.join(' ')}: ${n.failureSummary}`).join('; ')}`);
    throw new Error(`axe found ${result.violations.length} violation(s) on "${screen}":\n${lines.join('\n')}`);
  }
  console.log(`axe: ${screen}: no violations (${result.passes.length} rules passed)`);
}

/** The widget's frame inside the portal page. */
export function widgetFrame(page) {
  const frame = page.frames().find((f) => f.url().includes('/widget/'));
  if (!frame) throw new Error('no widget frame on the page');
  return frame;
}

/**
 * The accessibility tree of `locator` (Playwright's ARIA snapshot, YAML) holds every expected line, in order:
 * `expected` are regular expressions matched against successive lines. Throws with the snapshot otherwise.
 */
export async function ariaHas(locator, screen, expected) {
  const snapshot = await locator.ariaSnapshot();
  const lines = snapshot.split('\n');
  let at = 0;
  for (const pattern of expected) {
    const found = lines.findIndex((l, i) => i >= at && pattern.test(l));
    if (found < 0) throw new Error(`ARIA snapshot of "${screen}" lacks ${pattern} after line ${at}:\n${snapshot}`);
    at = found + 1;
  }
  console.log(`aria: ${screen}: ${expected.length} expected nodes in order`);
}
