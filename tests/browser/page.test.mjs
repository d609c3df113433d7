// The troubleshooting page in a real browser (Debian's chromium, driven by playwright-core),
// against a gateway the Rust test crates/claimgate/tests/browser_page.rs started. It reads:
//   CLAIMGATE_ADMIN          the admin listener's origin (http://127.0.0.1:PORT)
//   CLAIMGATE_GOOD_TOKEN     a token the deployment accepts
//   CLAIMGATE_BAD_TOKEN      a token issued for another audience (aud check fails)
//   CLAIMGATE_REFUSED_ID     the opc-request-id of a request the gateway refused (bad token)
//   CLAIMGATE_HOSTILE_ID     the id of a refused request whose id and User-Agent are markup
//   CLAIMGATE_SCREENSHOTS    a directory for the screenshots (test artifacts, not committed)
// and exits 0 when every step passed, printing one line a step.
import { chromium } from "playwright-core";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

const admin = process.env.CLAIMGATE_ADMIN;
const good = process.env.CLAIMGATE_GOOD_TOKEN;
const bad = process.env.CLAIMGATE_BAD_TOKEN;
const refusedId = process.env.CLAIMGATE_REFUSED_ID;
const hostileId = process.env.CLAIMGATE_HOSTILE_ID;
const shots = process.env.CLAIMGATE_SCREENSHOTS || ".";
if (!admin || !good || !bad || !refusedId || !hostileId) {
  console.error("CLAIMGATE_ADMIN, CLAIMGATE_GOOD_TOKEN, CLAIMGATE_BAD_TOKEN, CLAIMGATE_REFUSED_ID, CLAIMGATE_HOSTILE_ID are needed");
  process.exit(2);
}

const profile = mkdtempSync(join(tmpdir(), "claimgate-chromium-"));
// A fresh profile each run (playwright takes it apart from the arguments).
const context = await chromium.launchPersistentContext(profile, {
  executablePath: process.env.CLAIMGATE_CHROMIUM || "/usr/bin/chromium",
  viewport: { width: 1180, height: 900 },
  args: [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
  ],
});

const failures = [];
function check(name, condition, detail) {
  if (condition) {
    console.log(`ok - ${name}`);
  } else {
    console.log(`FAILED - ${name}${detail ? ": " + detail : ""}`);
    failures.push(name);
  }
}

try {
  const page = await context.newPage();
  const origin = new URL(admin).origin;
  const foreign = [];
  const consoleErrors = [];
  page.on("request", (request) => {
    const url = new URL(request.url());
    if (url.origin !== origin && url.protocol !== "data:") foreign.push(request.url());
  });
  page.on("console", (message) => {
    if (message.type() === "error") consoleErrors.push(message.text());
  });
  page.on("pageerror", (error) => consoleErrors.push(String(error)));

  // 1. The page loads, lists the deployment and its routes.
  const answer = await page.goto(admin + "/", { waitUntil: "networkidle" });
  check("the page loads", answer && answer.status() === 200, answer && String(answer.status()));
  await page.waitForSelector("#deployment option", { state: "attached", timeout: 10000 });
  await page.waitForSelector(".route", { timeout: 10000 });
  const deploymentText = await page.textContent("#deployment");
  check("the deployments are listed", deploymentText.includes("/v1"), deploymentText);
  const routes = await page.locator(".route").allTextContents();
  check("the routes are listed", routes.some((r) => r.includes("/v1/private")), routes.join(" | "));

  // 2. A failing token: the failed checks with expected, actual and fix.
  await page.locator(".route", { hasText: "/v1/private" }).first().click();
  await page.fill("#token", bad);
  await page.click("#check-button");
  await page.waitForSelector("#verdict-banner.deny", { timeout: 10000 });
  const banner = await page.textContent("#verdict-banner");
  check("a failing token is refused", banner.includes("Refused") && banner.includes("401"), banner);
  const failed = await page.locator("#checks li.fail").evaluateAll((items) =>
    items.map((item) => ({ check: item.dataset.check, text: item.textContent }))
  );
  const aud = failed.find((f) => f.check === "aud");
  check("the failing check is aud", aud !== undefined, JSON.stringify(failed));
  check(
    "expected, actual and fix are shown",
    aud && aud.text.includes("expected") && aud.text.includes("api") && aud.text.includes("web") && aud.text.includes("fix"),
    aud && aud.text
  );
  const passed = await page.locator("#checks li.pass").count();
  check("the passing checks are shown too", passed >= 3, String(passed));
  const events = await page.textContent("#events");
  check("OCI's execution-log line is shown", events.includes("authenticationFailed"), events);
  const claims = await page.textContent("#token-claims");
  check("the claims are decoded with UTC times", claims.includes("aud") && /\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ/.test(claims), claims);
  check("markup in a claim is shown as text", claims.includes("<img src="), claims);
  await page.screenshot({ path: join(shots, "page-refused.png"), fullPage: true });

  // 3. A good token passes.
  await page.fill("#token", good);
  await page.click("#check-button");
  await page.waitForSelector("#verdict-banner.allow", { timeout: 10000 });
  const fails = await page.locator("#checks li.fail").count();
  check("a good token is allowed, no check fails", fails === 0, String(fails));

  // 4. A recent refusal opens with its diagnosis.
  await page.click("#refresh");
  const row = page.locator(`#recent-rows tr[data-request-id="${refusedId}"]`);
  await row.waitFor({ timeout: 10000 });
  await row.click();
  await page.waitForSelector("#request-detail .diag li", { timeout: 10000 });
  const detail = await page.textContent("#request-detail");
  check("a recent refusal opens with its diagnosis", detail.includes(refusedId) && detail.includes("aud") && detail.includes("fix"), detail);
  check("its records are shown", detail.includes("access"), detail);
  await page.screenshot({ path: join(shots, "page-recent.png"), fullPage: true });
  // From the refusal back to the form: its method and path are filled in.
  await page.fill("#path", "");
  await page.click("#check-again");
  const path = await page.inputValue("#path");
  check("a refusal fills the form with its request", path === "/v1/private", path);

  // 5. Markup a client or a deployment file put in what the page shows stays text: the
  // deployment's label, a request id (and a User-Agent, were the records to show it).
  check("markup in a label is shown as text", deploymentText.includes("<img src=//evil.example/label.png>"), deploymentText);
  await page.click("#refresh");
  const hostileRow = page.locator("#recent-rows tr").filter({ hasText: hostileId });
  await hostileRow.first().waitFor({ timeout: 10000 });
  const recentText = await page.textContent("#recent-rows");
  check("markup in a request id and label is listed as text", recentText.includes(hostileId) && recentText.includes("<img src=//evil.example/label.png>"), recentText);
  await hostileRow.first().click();
  await page.waitForFunction((id) => (document.querySelector("#request-detail h3") || {}).textContent === "Request " + id, hostileId, { timeout: 10000 });
  const hostileDetail = await page.textContent("#request-detail");
  check("its detail names the id as text", hostileDetail.includes("Request " + hostileId), hostileDetail);
  const images = await page.evaluate(() => document.querySelectorAll("main img").length);
  check("no markup became an element", images === 0, String(images));

  // 6. Same origin only, and nothing went wrong in the console.
  check("no request to any other host", foreign.length === 0, foreign.join(", "));
  check("no console error", consoleErrors.length === 0, consoleErrors.join(" | "));
  // The token pasted is not in the page's URL or storage.
  const stored = await page.evaluate(() => location.href + JSON.stringify(localStorage) + JSON.stringify(sessionStorage) + document.cookie);
  check("the token is not stored by the page", !stored.includes(good) && !stored.includes(bad));
} catch (error) {
  check("the browser steps ran", false, String(error && error.stack ? error.stack : error));
} finally {
  await context.close();
  rmSync(profile, { recursive: true, force: true });
}

console.log(`browser: ${failures.length === 0 ? "all steps passed" : failures.length + " failed"}`);
process.exit(failures.length === 0 ? 0 : 1);
