// An operator stops a run that waits for approval, from the run's page: the confirmation is
// asked (and a "no" changes nothing), the run is frozen for inspection, the operator releases
// it, and the run finishes as stopped.
//
// Env: UI_URL, UI_RUN, UI_REASON, UI_PASSWORD, UI_OPERATOR, UI_ARTIFACTS.

import { check, env, imagesLoad, noBrokenPages, reloadUntil, scenario, signInAt } from "./lib.mjs";

const run = env("UI_RUN");
const olga = env("UI_OPERATOR");
const REASON = env("UI_REASON");

await scenario("stop", async (t) => {
  t.url = env("UI_URL");
  const ctx = await t.context();
  const page = await t.page(ctx, "olga");
  await signInAt(t, page, "/runs", olga, env("UI_PASSWORD"));
  const link = page.getByRole("link", { name: run, exact: true });
  await reloadUntil(page, link, `run ${run} in the list`);
  await link.click();
  await page.waitForURL((u) => u.pathname === `/runs/${run}`);
  const waiting = page.locator(".banner.wait").filter({ hasText: "Waiting for approval" });
  await reloadUntil(page, waiting.locator("a"), "the run to wait for approval");
  await t.shot(page, "waiting-run");

  t.step("answering no to the confirmation stops nothing");
  const reason = page.getByPlaceholder(/Why stop/);
  await reason.fill(REASON);
  page.once("dialog", (d) => d.dismiss());
  await page.getByRole("button", { name: "Stop run" }).click();
  await page.waitForTimeout(500); // let a (wrongly) submitted form navigate, if it would
  check(new URL(page.url()).pathname === `/runs/${run}`, "still on the run page");
  check((await page.locator(".banner").filter({ hasText: "Stop requested" }).count()) === 0, "no stop");

  t.step("stop the run");
  let question = "";
  page.once("dialog", (d) => {
    question = d.message();
    d.accept();
  });
  const stopped = page.waitForResponse((r) => r.request().method() === "POST");
  await page.getByRole("button", { name: "Stop run" }).click();
  check((await stopped).status() === 303, "the stop is accepted");
  check(/Stop this run/.test(question), `the confirmation asks: ${question}`);
  await page.locator(".banner.bad").filter({ hasText: `Stop requested by ${olga}` }).waitFor();
  await page.getByText(REASON).first().waitFor();
  await t.shot(page, "stop-requested");

  t.step("the stopped run is frozen for inspection, then released");
  const frozen = page.locator(".banner.info").filter({ hasText: "Frozen for inspection" });
  await reloadUntil(page, frozen, "the run to freeze");
  await imagesLoad(page.locator("#live-shot"), "the frozen run's screen");
  await t.shot(page, "frozen");
  await page.getByPlaceholder(/what you inspected/).fill("looked at the draft note; nothing sent");
  await page.getByRole("button", { name: "Release and tear down" }).click();
  await page.waitForURL((u) => u.pathname === `/runs/${run}`);
  const end = page.locator(".banner").filter({ hasText: `stopped by ${olga}` });
  await reloadUntil(page, end, "the run to finish");
  await end.filter({ hasText: REASON }).waitFor();
  await t.shot(page, "stopped");

  t.step("the queue no longer holds the run's request");
  await page.goto(`${t.url}/approvals`);
  await page.getByText("Nothing is waiting for approval.").waitFor();
  noBrokenPages(t);
});
