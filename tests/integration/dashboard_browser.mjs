// dashboard_browser.mjs - Debian's chromium driven by playwright-core for
// the dashboard test: a fresh profile directory, the flags that keep a
// closed network quiet, and a log of console errors, page errors and
// dialogs (an XSS payload that ran would show up as one of them).
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { chromium } from 'playwright-core';

const ARGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
  '--disable-background-networking', '--disable-component-update', '--disable-sync'];

export async function launchBrowser() {
  const profile = fs.mkdtempSync(path.join(os.tmpdir(), 'mlxm-chromium-'));
  // launchPersistentContext passes the --user-data-dir (launch() refuses one in args).
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
    headless: true,
    args: ARGS,
    viewport: { width: 1280, height: 900 },
  });
  const problems = [];
  const dialogs = [];
  // Console errors matching `allowed` (set around a step that expects an
  // HTTP error response, which Chromium logs as a failed resource) are kept
  // apart.
  const state = { allowed: null, phase: 'start' };
  const watch = (page) => {
    page.on('console', (msg) => {
      if (msg.type() !== 'error') return;
      const text = msg.text();
      if (state.allowed && state.allowed.test(text)) return;
      problems.push(`[${state.phase}] console: ${text}`);
    });
    page.on('pageerror', (err) => problems.push(`[${state.phase}] pageerror: ${err.message}`));
    page.on('dialog', async (d) => {
      dialogs.push(`[${state.phase}] ${d.type()}: ${d.message()}`);
      await d.dismiss().catch(() => {});
    });
  };
  context.on('page', watch);
  for (const p of context.pages()) watch(p);
  return {
    context,
    problems,
    dialogs,
    state,
    async page() {
      return context.pages()[0] || context.newPage();
    },
    async close() {
      await context.close();
      fs.rmSync(profile, { recursive: true, force: true });
    },
  };
}
