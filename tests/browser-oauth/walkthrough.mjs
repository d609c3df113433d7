// The README's OAUTH2 walkthrough in Chromium: log in as alice, try CSRF, log out.
// Usage: node walkthrough.mjs [GATEWAY_BASE]   (default http://localhost:8090)
import { chromium } from 'playwright-core';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { mkdtempSync } from 'node:fs';
const context = await chromium.launchPersistentContext(mkdtempSync(join(tmpdir(), 'claimgate-chromium-')), {
  executablePath: '/usr/bin/chromium', headless: true,
  args: ['--headless','--no-sandbox','--disable-gpu','--disable-quic','--no-first-run','--disable-background-networking','--disable-component-update','--disable-sync'] });
const page = context.pages()[0];
const gw = process.argv[2] || 'http://localhost:8090';
await page.goto(`${gw}/app/me`);
console.log('at', page.url().replace(/interaction\/.*/, 'interaction/<uid>'));
await page.fill('input[name="login"]', 'alice'); await page.fill('input[name="password"]', 'x');
await page.click('button[type="submit"]');
await page.waitForURL(/interaction|app\/me/);
if (page.url().includes('interaction')) await page.click('button[type="submit"]');
await page.waitForURL(`${gw}/app/me`);
console.log('at', page.url(), '->', await page.locator('body').innerText());
for (const c of await context.cookies(`${gw}/app/me`)) console.log('cookie', c.name, 'httpOnly', c.httpOnly, 'sameSite', c.sameSite, 'path', c.path, 'secure', c.secure, 'value', c.value.length, 'chars');
const r = await page.evaluate(async () => { const t = (await fetch('/app/me')).headers.get('x-csrf-token'); return [ (await fetch('/app/me',{method:'POST'})).status, (await fetch('/app/me',{method:'POST',headers:{'X-CSRF-TOKEN':t}})).status ]; });
console.log('POST without X-CSRF-TOKEN', r[0], 'with it', r[1]);
await page.goto(`${gw}/app/logout?postLogoutUrl=/bye`);
console.log('at', page.url().split('?')[0]);
await page.click('button[name="logout"][value="yes"]');
await page.waitForURL((u) => u.href.startsWith(`${gw}/app/bye`));
console.log('at', page.url(), '->', await page.locator('body').innerText());
await context.close();
