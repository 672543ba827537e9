// A reviewer denies a run's request in the browser: first without a reason (refused, with a
// message), then with one; the run learns it was denied and finishes.
//
// Env: UI_URL, UI_RUN, UI_REASON, UI_PASSWORD, UI_REVIEWER, UI_ARTIFACTS.

import { cardOf, check, env, noBrokenPages, reloadUntil, scenario, signInAt } from "./lib.mjs";

const run = env("UI_RUN");
const alice = env("UI_REVIEWER");
const REASON = env("UI_REASON");

await scenario("deny", async (t) => {
  t.url = env("UI_URL");
  const ctx = await t.context();
  const page = await t.page(ctx, "alice");
  await signInAt(t, page, "/approvals", alice, env("UI_PASSWORD"));

  t.step("deny without a reason: refused, nothing decided");
  let card = await cardOf(page, run);
  const requestId = await card.getAttribute("id");
  const bare = page.waitForResponse((r) => r.request().method() === "POST");
  await card.getByRole("button", { name: "Deny" }).click();
  check((await bare).status() === 400, "a denial without a reason is a bad request");
  await page.getByText("a denial needs a reason").waitFor();
  await t.shot(page, "deny-without-reason");

  t.step("deny with a reason");
  await page.goto(`${t.url}/approvals`);
  card = await cardOf(page, run);
  check((await card.getAttribute("id")) === requestId, "the same request is still waiting");
  await card.getByLabel(/Reason/).fill(REASON);
  const denied = page.waitForResponse((r) => r.request().method() === "POST");
  await card.getByRole("button", { name: "Deny" }).click();
  check((await denied).status() === 303, "the denial is accepted");
  await page.locator(".banner.bad").filter({ hasText: `by ${alice}` }).waitFor();
  const recent = page.locator("table tr").filter({ hasText: REASON });
  await recent.getByText("denied").waitFor();
  await t.shot(page, "denied");

  t.step("the run page shows the denial as the run's end");
  await page.getByRole("link", { name: run }).first().click();
  await page.waitForURL((u) => u.pathname === `/runs/${run}`);
  const end = page.locator(".banner").filter({ hasText: `approval denied at step` });
  await reloadUntil(page, end, "the run to finish");
  await end.filter({ hasText: alice }).waitFor();
  await t.shot(page, "run-denied");
  noBrokenPages(t);
});
