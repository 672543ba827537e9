// The one-file replay (`airlock replay RUN -o FILE.html`) opened from disk, as someone who was
// sent the file would: it renders, its steps and screenshots show, and its own CSP (no script,
// images only from data: URLs) refuses nothing the page needs.
//
// Env: UI_REPLAY (the file), UI_RUN, UI_ARTIFACTS.

import { pathToFileURL } from "node:url";
import { check, env, imagesLoad, scenario } from "./lib.mjs";

await scenario("replay", async (t) => {
  const ctx = await t.context();
  const page = await t.page(ctx, "replay-file");
  const blocked = [];
  page.on("requestfailed", (r) => blocked.push(`${r.url().slice(0, 80)}: ${r.failure()?.errorText}`));
  await page.goto(pathToFileURL(env("UI_REPLAY")).href);
  await page.getByText("Audit chain verified").waitFor();
  await page.getByText(env("UI_RUN")).first().waitFor();
  const steps = page.locator("section.step");
  check((await steps.count()) >= 5, `the replay shows the run's steps (${await steps.count()})`);
  await steps.filter({ hasText: "Submit note" }).first().waitFor();
  await imagesLoad(page.locator("body"), "the replay");
  // Each step's before/after screenshot is drawn (a <use> of an embedded image), not empty.
  const drawn = await page.locator("section.step figure.shot svg").evaluateAll((svgs) =>
    svgs.map((s) => {
      const r = s.getBoundingClientRect();
      return r.width > 100 && r.height > 50;
    }),
  );
  check(drawn.length > 0 && drawn.every(Boolean), `screenshots have a size: ${JSON.stringify(drawn)}`);
  await t.shot(page, "replay-top", { element: page.locator("main > *").first() });
  await steps.filter({ hasText: "Submit note" }).first().scrollIntoViewIfNeeded();
  await t.shot(page, "replay-submit-step", { element: steps.filter({ hasText: "Submit note" }).first() });
  check(t.problems.length === 0, `no console errors (CSP included): ${t.problems.join("; ")}`);
  check(blocked.length === 0, `nothing the file needs was refused: ${blocked.join("; ")}`);
});
