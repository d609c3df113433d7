// The OAUTH2 login in a real browser: Debian's chromium driven by playwright-core (never
// `playwright install`). Run by crates/claimgate/tests/oauth2.rs against a gateway serving its
// test deployment (prefix /app) and tests/idp (oidc-provider with dev interactions).
//
// Usage: node login.mjs GATEWAY_BASE [SCREENSHOT_DIR]
// GATEWAY_BASE is http://localhost:PORT: the provider is at 127.0.0.1, so the two do not share
// cookies and a cookie-scope mistake shows. Prints one JSON line of what it saw; exits 1 on
// the first unexpected step.
import { chromium } from 'playwright-core';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const [gateway, shots] = process.argv.slice(2);
if (!gateway) {
  console.error('usage: node login.mjs GATEWAY_BASE [SCREENSHOT_DIR]');
  process.exit(2);
}
const profile = mkdtempSync(join(tmpdir(), 'claimgate-chromium-'));
const context = await chromium.launchPersistentContext(profile, {
  executablePath: '/usr/bin/chromium',
  headless: true,
  viewport: { width: 760, height: 420 },
  args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
    '--disable-background-networking', '--disable-component-update', '--disable-sync'],
});
const seen = {};
function expect(condition, what) {
  if (!condition) throw new Error(`unexpected: ${what} (seen so far: ${JSON.stringify(seen)})`);
}
try {
  const page = context.pages()[0] ?? await context.newPage();
  // 1. The protected page sends the browser to the provider's login form.
  await page.goto(`${gateway}/app/me`);
  seen.loginPage = new URL(page.url()).pathname;
  expect(seen.loginPage.startsWith('/interaction/'), `the provider's login form, got ${page.url()}`);
  await page.fill('input[name="login"]', 'alice');
  await page.fill('input[name="password"]', 'any password');
  if (shots) await page.screenshot({ path: join(shots, 'oauth2-login.png') });
  await page.click('button[type="submit"]');
  // 2. The consent form, then back at the gateway on the page first asked for.
  await page.waitForURL(/\/interaction\/|\/app\/me/);
  if (page.url().includes('/interaction/')) await page.click('button[type="submit"]');
  await page.waitForURL(`${gateway}/app/me`);
  const headers = JSON.parse(await page.locator('body').innerText());
  seen.user = headers['x-user'];
  expect(seen.user === 'alice', 'the backend got request.auth[id_token_claims][sub] = alice');
  if (shots) await page.screenshot({ path: join(shots, 'oauth2-landed.png') });
  // 3. The session cookie as the SPEC says.
  const cookie = (await context.cookies(`${gateway}/app/me`)).find((c) => c.name === 'claimgate_session');
  expect(cookie, 'a claimgate_session cookie');
  seen.cookie = { httpOnly: cookie.httpOnly, sameSite: cookie.sameSite, path: cookie.path, secure: cookie.secure };
  expect(cookie.httpOnly && cookie.sameSite === 'Lax' && cookie.path === '/app', 'HttpOnly, SameSite=Lax, Path=/app');
  // 4. Scripts: a POST without X-CSRF-TOKEN is refused, with it accepted.
  seen.csrf = await page.evaluate(async () => {
    const token = (await fetch('/app/page')).headers.get('x-csrf-token');
    const without = (await fetch('/app/page', { method: 'POST', body: 'x' })).status;
    const withToken = (await fetch('/app/page', { method: 'POST', body: 'x', headers: { 'X-CSRF-TOKEN': token } })).status;
    return { without, withToken };
  });
  expect(seen.csrf.without === 403 && seen.csrf.withToken === 200, 'CSRF 403 then 200');
  // 5. Logout: the provider's confirmation, then the allowed post-logout page.
  await page.goto(`${gateway}/app/logout?postLogoutUrl=/bye`);
  expect(page.url().includes('/session/end'), `the provider's logout form, got ${page.url()}`);
  await page.click('button[name="logout"][value="yes"]');
  await page.waitForURL((url) => url.href.startsWith(`${gateway}/app/bye`), { timeout: 10000 });
  seen.afterLogout = await page.locator('body').innerText();
  expect(seen.afterLogout.trim() === 'bye', 'the post-logout page');
  expect(!(await context.cookies(`${gateway}/app/me`)).some((c) => c.name === 'claimgate_session'), 'no session cookie left');
  // 6. Logged out: the page asks for a login again.
  await page.goto(`${gateway}/app/me`);
  seen.again = new URL(page.url()).pathname;
  expect(seen.again.startsWith('/interaction/'), 'a new login');
  console.log(JSON.stringify({ ok: true, ...seen }));
} catch (error) {
  const at = context.pages()[0]?.url();
  console.log(JSON.stringify({ ok: false, at, error: String(error.message || error) }));
  process.exitCode = 1;
} finally {
  await context.close();
  rmSync(profile, { recursive: true, force: true });
}
