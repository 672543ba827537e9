// A reviewer's day with one run waiting for approval, in a real browser: a wrong password and
// a right one, the live run page following the run, the approval card (the target outlined in
// the screenshot, the values to be sent), a viewer who cannot approve even by forging the form,
// stale tabs after signing out and in elsewhere, the approval itself, and signing out.
//
// Env: UI_URL, UI_RUN, UI_REASON, UI_PASSWORD, UI_REVIEWER (role reviewer),
// UI_VIEWER (role viewer), UI_ARTIFACTS.

import {
  cardOf,
  check,
  env,
  imagesLoad,
  noBrokenPages,
  reloadUntil,
  scenario,
  signIn,
  signInAt,
} from "./lib.mjs";

const run = env("UI_RUN");
const password = env("UI_PASSWORD");
const alice = env("UI_REVIEWER");
const vera = env("UI_VIEWER");
const REASON = env("UI_REASON");

await scenario("review", async (t) => {
  t.url = env("UI_URL");
  const ctx = await t.context();
  const queue = await t.page(ctx, "alice-queue");

  t.step("a protected page sends a stranger to sign in");
  await queue.goto(`${t.url}/approvals`);
  await queue.waitForURL((u) => u.pathname === "/login");
  await queue.getByRole("heading", { name: "Sign in" }).waitFor();
  await t.shot(queue, "sign-in-page");

  t.step("a wrong password is refused with a message");
  await signIn(queue, alice, "not the password at all");
  await queue.getByText("invalid name or password").waitFor();
  check(new URL(queue.url()).pathname === "/login", "still on the login page");
  await t.shot(queue, "wrong-password");

  t.step("the right password signs in and goes where the reviewer was headed");
  await signIn(queue, alice, password);
  await queue.waitForURL((u) => u.pathname === "/approvals");
  await queue.getByText(`${alice} · reviewer`).waitFor();

  t.step("the live run page follows the run");
  const live = await t.page(ctx, "alice-live");
  const streamed = [];
  await live.exposeFunction("reportStreamed", (kind, text) => streamed.push({ kind, text }));
  await live.goto(`${t.url}/runs`);
  const link = live.getByRole("link", { name: run, exact: true });
  await reloadUntil(live, link, `run ${run} in the list`);
  await link.click();
  await live.waitForURL((u) => u.pathname === `/runs/${run}`);
  await live.getByRole("heading", { name: `Run ${run}` }).waitFor();
  // Watch what the page's script adds, without reloading: timeline lines and new screenshots.
  await live.evaluate(() => {
    window.sameDocument = true;
    const timeline = document.getElementById("timeline");
    new MutationObserver((changes) => {
      for (const c of changes)
        for (const n of c.addedNodes) if (n.nodeType === 1) window.reportStreamed("item", n.textContent);
    }).observe(timeline, { childList: true });
    const shotBox = document.getElementById("live-shot");
    new MutationObserver((changes) => {
      for (const c of changes) window.reportStreamed("shot", c.target.getAttribute("href"));
    }).observe(shotBox, { subtree: true, attributes: true, attributeFilter: ["href"] });
  });
  check(
    (await live.locator("#timeline").getAttribute("data-stream")) !== null,
    "an unfinished run's page follows its stream",
  );
  await live
    .locator("#timeline li")
    .filter({ hasText: "waiting for approval" })
    .first()
    .waitFor({ timeout: 180_000 });
  await t.shot(live, "live-run-waiting");

  t.step("the approval card shows the target and the values to be sent");
  await queue.goto(`${t.url}/approvals`);
  const card = await cardOf(queue, run);
  const requestId = await card.getAttribute("id");
  check(/^apr-/.test(requestId ?? ""), `the card is named by its request id, got ${requestId}`);
  await card.locator(".summary").filter({ hasText: "Submit note" }).waitFor();
  const marker = card.locator("figure.shot svg g.marker");
  check((await marker.count()) === 1, "one marker outlines the target in the screenshot");
  const ring = await marker.locator("circle.mk-ring").boundingBox();
  const svg = await card.locator("figure.shot svg").boundingBox();
  check(
    ring && svg && ring.x >= svg.x && ring.y >= svg.y && ring.x + ring.width <= svg.x + svg.width + 1,
    `the marker lies on the screenshot (${JSON.stringify({ ring, svg })})`,
  );
  await imagesLoad(card, "the approval card");
  const sent = card.locator("table.fields");
  await sent.getByRole("columnheader", { name: "Value that will be sent" }).waitFor();
  await sent.getByRole("cell", { name: /test_refund_rounding/ }).waitFor();
  await card.getByRole("button", { name: "Approve" }).waitFor();
  await card.getByRole("button", { name: "Deny" }).waitFor();
  await t.shot(queue, "approval-card", { element: card });

  t.step("a viewer sees the card but has no buttons, and a forged approval is refused");
  const viewerCtx = await t.context();
  const viewer = await t.page(viewerCtx, "vera");
  await signInAt(t, viewer, "/approvals", vera, password);
  const viewersCard = await cardOf(viewer, run);
  check((await viewersCard.getByRole("button", { name: "Approve" }).count()) === 0, "no Approve");
  check((await viewersCard.getByRole("button", { name: "Deny" }).count()) === 0, "no Deny");
  await viewersCard.getByText("You have the viewer role").waitFor();
  await t.shot(viewer, "viewer-card", { element: viewersCard });
  // The viewer's own page, own session and own CSRF token: only the role is missing.
  const forged = viewer.waitForResponse(
    (r) => r.request().method() === "POST" && r.url().endsWith(`/approvals/${requestId}`),
  );
  await viewer.evaluate(
    ({ id, runId }) => {
      const csrf = document.querySelector('form[action="/logout"] input[name="csrf"]').value;
      const f = document.createElement("form");
      f.method = "post";
      f.action = `/approvals/${id}`;
      for (const [k, v] of Object.entries({ csrf, run_id: runId, decision: "approve", reason: "forged" })) {
        const i = document.createElement("input");
        i.type = "hidden";
        i.name = k;
        i.value = v;
        f.appendChild(i);
      }
      document.body.appendChild(f);
      f.submit();
    },
    { id: requestId, runId: run },
  );
  check((await forged).status() === 403, "the viewer's forged approval is refused with 403");
  await viewer.getByText(`\`${vera}\` has role viewer; this needs role reviewer or higher`).waitFor();
  await t.shot(viewer, "viewer-forged-post-refused");

  t.step("a tab whose session ended elsewhere is told to sign in again");
  const other = await t.page(ctx, "alice-other-tab");
  await other.goto(`${t.url}/runs`);
  await other.getByRole("button", { name: "Sign out" }).click();
  await other.waitForURL((u) => u.pathname === "/login");
  await card.getByLabel(/Reason/).fill(REASON);
  const signedOut = queue.waitForResponse((r) => r.request().method() === "POST");
  await card.getByRole("button", { name: "Approve" }).click();
  check((await signedOut).status() === 401, "a post from a signed-out tab is 401");
  await queue.getByText("you are not signed in").waitFor();
  await t.shot(queue, "stale-tab-signed-out");

  t.step("a tab whose CSRF token is stale (signed out and in elsewhere) is refused clearly");
  await signIn(other, alice, password);
  await other.waitForURL((u) => u.pathname === "/runs");
  await queue.goto(`${t.url}/approvals`);
  const card2 = await cardOf(queue, run);
  await other.getByRole("button", { name: "Sign out" }).click();
  await other.waitForURL((u) => u.pathname === "/login");
  await signIn(other, alice, password);
  await other.waitForURL((u) => u.pathname === "/runs");
  await card2.getByLabel(/Reason/).fill(REASON);
  const stale = queue.waitForResponse((r) => r.request().method() === "POST");
  await card2.getByRole("button", { name: "Approve" }).click();
  check((await stale).status() === 403, "a stale CSRF token is 403");
  await queue.getByText("this page is out of date").waitFor();
  await queue.getByRole("link", { name: "Back to Airlock" }).waitFor();
  await t.shot(queue, "stale-tab-csrf");
  // Nothing was decided by any of that.
  await other.goto(`${t.url}/approvals`);
  await cardOf(other, run);

  t.step("approve with a reason");
  await queue.goto(`${t.url}/approvals`);
  const card3 = await cardOf(queue, run);
  await card3.getByLabel(/Reason/).fill(REASON);
  const approved = queue.waitForResponse((r) => r.request().method() === "POST");
  await card3.getByRole("button", { name: "Approve" }).click();
  check((await approved).status() === 303, "the approval is accepted");
  await queue.waitForURL((u) => u.pathname === "/approvals" && u.searchParams.get("done") === requestId);
  await queue.locator(".banner.ok").filter({ hasText: `by ${alice}` }).waitFor();
  await queue.getByText("Nothing is waiting for approval.").waitFor();
  await t.shot(queue, "approved");

  t.step("the live page shows the approval as it happens, then the verified outcome");
  await live
    .locator(".banner")
    .filter({ hasText: "succeeded: verified by the host" })
    .waitFor({ timeout: 300_000 });
  const streamedItems = streamed.filter((s) => s.kind === "item").map((s) => s.text);
  check(
    streamedItems.some((s) => s.includes(`approved by ${alice}: ${REASON}`)),
    `the approval arrived over the stream, without a reload; streamed: ${JSON.stringify(streamedItems)}`,
  );
  check(
    streamed.some((s) => s.kind === "shot" && /\/shots\//.test(s.text)),
    `new screenshots arrived over the stream; streamed: ${JSON.stringify(streamed)}`,
  );
  await live.getByRole("link", { name: "open the replay" }).waitFor();
  await imagesLoad(live.locator("#live-shot"), "the finished run's screen");
  await t.shot(live, "live-run-finished");

  t.step("sign out: protected pages send to sign-in again");
  await queue.getByRole("button", { name: "Sign out" }).click();
  await queue.waitForURL((u) => u.pathname === "/login");
  for (const path of ["/runs", "/approvals", `/runs/${run}`]) {
    await queue.goto(t.url + path);
    await queue.waitForURL((u) => u.pathname === "/login" && u.searchParams.get("next") === path);
    await queue.getByRole("heading", { name: "Sign in" }).waitFor();
  }
  await t.shot(queue, "signed-out");
  noBrokenPages(t);
});
