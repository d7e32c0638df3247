// SPDX-License-Identifier: Apache-2.0
// The web UI in Debian's chromium, driven by playwright-core (run.sh starts and fills the servers
// and sets the environment). Each step loads a page, checks what it shows, clicks through it and
// saves a screenshot to $SHOTS. Ends with "N passed, N failed"; exit status 1 on any failure.
import { chromium } from 'playwright-core';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const env = (k) => {
  if (!process.env[k]) throw new Error(`${k} is not set (run tests/browser/run.sh)`);
  return process.env[k];
};
const OPEN = env('OPEN_URL');
const AUTH = env('AUTH_URL');
const PUB = env('PUB_URL');
const SHOTS = env('SHOTS');
const WEB_DIGEST = env('WEB_DIGEST');
const SIG_DIGEST = env('SIG_DIGEST');
const SBOM_DIGEST = env('SBOM_DIGEST');
const HOST = new URL(OPEN).host;

let passed = 0;
let failed = 0;
function check(what, ok, detail) {
  if (ok) passed++;
  else {
    failed++;
    console.error(`FAIL: ${what}${detail !== undefined ? ': ' + JSON.stringify(detail) : ''}`);
  }
}
function eq(what, want, got) {
  check(what, JSON.stringify(want) === JSON.stringify(got), { want, got });
}
async function step(name, fn) {
  try {
    await fn();
  } catch (e) {
    failed++;
    console.error(`FAIL: ${name}: ${e.stack || e}`);
  }
}

const profile = mkdtempSync(join(tmpdir(), 'berth-chromium-'));
const ctx = await chromium.launchPersistentContext(profile, {
  executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
  headless: true,
  args: ['--headless', '--no-sandbox', '--disable-gpu', '--no-first-run', '--disable-background-networking',
    '--disable-component-update', '--disable-sync', '--disable-quic'],
  viewport: { width: 1200, height: 800 },
  timeout: 30000,
});
ctx.setDefaultTimeout(20000); // generous: make check runs other tests beside this one
const errors = [];
const external = [];
ctx.on('page', (p) => {
  p.on('pageerror', (e) => errors.push(String(e)));
  p.on('console', (m) => { if (m.type() === 'error' && !/status of 40[134]/.test(m.text())) errors.push(m.text()); });
  p.on('request', (r) => {
    const u = new URL(r.url());
    if (u.protocol.startsWith('http') && u.hostname !== '127.0.0.1') external.push(r.url());
  });
});
const shot = (page, name) => page.screenshot({ path: join(SHOTS, name + '.png') });
const rowsText = (page, sel) => page.locator(sel).allTextContents();
// the first element SEL shows a text other than WAS (a new page has arrived), or exactly IS
const changed = (page, sel, was) => page.waitForFunction(([s, w]) => {
  const t = document.querySelector(s)?.textContent;
  return t !== undefined && t !== w;
}, [sel, was]);
const showing = (page, sel, is) => page.waitForFunction(([s, w]) => document.querySelector(s)?.textContent === w, [sel, is]);
const settled = (page) => page.waitForFunction(() => !/Loading…/.test(document.querySelector('main').textContent));

// ---- the open registry ------------------------------------------------------------------------
const page = ctx.pages()[0] || await ctx.newPage();
await ctx.grantPermissions(['clipboard-read', 'clipboard-write'], { origin: OPEN });

await step('repositories page', async () => {
  const res = await page.goto(OPEN + '/ui/');
  eq('GET /ui/ status', 200, res.status());
  await page.locator('table.repos tbody tr').first().waitFor();
  eq('title', 'Repositories · berth', await page.title());
  const names = await rowsText(page, 'table.repos tbody tr td:first-child a');
  eq('first page has 50 repositories', 50, names.length);
  check('repositories sorted by name', names.every((n, i) => i === 0 || names[i - 1] < n), names.slice(0, 5));
  check('bulk namespace shown as a group', (await rowsText(page, 'h2.ns')).some((t) => t.startsWith('bulk/ns')));
  const count = await page.locator('p.count').textContent();
  // the API may leave the total out (null) when counting is costly: then the page count shows
  if (/on this page/.test(count)) eq('count of the page when there is no total', '50 repositories on this page', count);
  else check('total counts every repository (2,000 bulk + 5)', Number(count.match(/^(\d+)/)?.[1]) >= 2004, count);
  const first = page.locator('table.repos tbody tr').first();
  check('tag count shown', /^\d+$/.test((await first.locator('td').nth(1).textContent()).trim()));
  check('size human-readable', /\d(\.\d)? (B|KiB|MiB|GiB)$/.test((await first.locator('td').nth(2).textContent()).trim()));
  const t = first.locator('td').nth(3).locator('time');
  check('last push has an absolute time', /^\d{4}-\d\d-\d\dT/.test(await t.getAttribute('datetime')));
  check('last push is relative', /ago|now|second|minute/.test(await t.textContent()));
  await shot(page, 'repositories');
});

await step('repositories paging', async () => {
  await page.goto(OPEN + '/ui/');
  await page.locator('table.repos tbody tr').first().waitFor();
  const p1 = await rowsText(page, 'table.repos tbody tr td:first-child a');
  check('previous disabled on the first page', await page.locator('button.prev').isDisabled());
  await page.click('button.next');
  await page.waitForURL(/last=/);
  await changed(page, 'table.repos tbody tr td a', p1[0]);
  const p2 = await rowsText(page, 'table.repos tbody tr td:first-child a');
  eq('second page has 50', 50, p2.length);
  check('second page follows the first', p2[0] > p1[p1.length - 1], [p1[p1.length - 1], p2[0]]);
  await page.click('button.next');
  await changed(page, 'table.repos tbody tr td a', p2[0]);
  await page.click('button.prev');
  await showing(page, 'table.repos tbody tr td a', p2[0]);
  await page.click('button.prev');
  await showing(page, 'table.repos tbody tr td a', p1[0]);
  check('back on the first page', await page.locator('button.prev').isDisabled());
  // a pasted link to a later page: Previous still leads back to the first
  await page.goto(OPEN + '/ui/?last=' + encodeURIComponent(p1[p1.length - 1]));
  await showing(page, 'table.repos tbody tr td a', p2[0]);
  await page.click('button.prev');
  await showing(page, 'table.repos tbody tr td a', p1[0]);
  check('deep link to page 2, then Previous: page 1', await page.locator('button.prev').isDisabled());
  await page.goBack();
  await showing(page, 'table.repos tbody tr td a', p2[0]);
  await page.click('button.next');
  await changed(page, 'table.repos tbody tr td a', p2[0]);
  const p3first = await page.locator('table.repos tbody tr td a').first().textContent();
  await page.click('button.prev');
  await showing(page, 'table.repos tbody tr td a', p2[0]);
  await page.goBack();
  await showing(page, 'table.repos tbody tr td a', p3first);
  check('browser back returns to the page before', page.url().includes('last='), page.url());
});

await step('repositories search', async () => {
  await page.goto(OPEN + '/ui/');
  await page.locator('table.repos tbody tr').first().waitFor();
  await page.fill('#repo-search', 'NS07/REPO0047');
  await page.waitForFunction(() => document.querySelectorAll('table.repos tbody tr').length === 1);
  eq('search finds one (case-insensitive)', ['bulk/ns07/repo0047'], await rowsText(page, 'table.repos tbody tr td:first-child a'));
  check('search kept in the URL', page.url().includes('q=NS07'), page.url());
  check('the search box keeps the focus', await page.evaluate(() => document.activeElement.id === 'repo-search'));
  await page.fill('#repo-search', 'multi');
  await page.waitForFunction(() => document.querySelector('table.repos tbody tr td a')?.textContent === 'library/multi');
  await page.fill('#repo-search', 'no-such-thing-here');
  await page.locator('.empty').waitFor();
  check('no match says so', /No repository matches/.test(await page.locator('.empty').textContent()));
  await page.fill('#repo-search', 'web');
  await page.waitForFunction(() => document.querySelector('table.repos tbody tr td a')?.textContent === 'team/web');
  await page.click('table.repos a:text-is("team/web")');
  await page.waitForURL(OPEN + '/ui/r/team/web');
  await page.locator('table.tags tbody tr').first().waitFor();
  check('a click on a repository opens it', true);
});

await step('repository page: 1,000 tags, sorting, paging', async () => {
  await page.goto(OPEN + '/ui/r/library/many');
  await page.locator('table.tags tbody tr').first().waitFor();
  let tags = await rowsText(page, 'table.tags tbody tr a.tagname');
  eq('100 tags a page', 100, tags.length);
  eq('newest first by default', 'newest', tags[0]);
  check('pushed header says descending', (await page.locator('th[aria-sort]').getAttribute('aria-sort')) === 'descending');
  const row = page.locator('tr[data-tag="newest"]');
  check('short digest', /^sha256:[0-9a-f]{12}$/.test((await row.locator('td.digest code').textContent()).trim()));
  check('size', /\d (B|KiB|MiB)$/.test((await row.locator('td').nth(2).textContent()).trim()));
  check('platform of an image manifest', (await row.locator('.plat').allTextContents()).includes('linux/amd64'));
  await shot(page, 'repository');

  await page.click('button.sort[data-sort="pushed"]');
  await page.waitForURL(/order=asc/);
  await changed(page, 'table.tags tbody tr a.tagname', 'newest');
  const times = await page.locator('table.tags tbody tr time').evaluateAll((ts) => ts.map((t) => Date.parse(t.getAttribute('datetime'))));
  check('oldest first after a click', times.every((t, i) => i === 0 || times[i - 1] <= t));
  await page.click('button.sort[data-sort="name"]');
  await page.waitForURL(/sort=name/);
  await page.waitForFunction(() => document.querySelector('table.tags tbody tr a.tagname')?.textContent === 'newest');
  tags = await rowsText(page, 'table.tags tbody tr a.tagname');
  check('by name', tags.every((t, i) => i === 0 || tags[i - 1] < t), tags.slice(0, 4));
  await page.click('button.next');
  await page.waitForURL(/last=/);
  await changed(page, 'table.tags tbody tr a.tagname', tags[0]);
  const next = await rowsText(page, 'table.tags tbody tr a.tagname');
  check('next page of tags continues the order', next[0] > tags[tags.length - 1], [tags[tags.length - 1], next[0]]);
  let pages = 2;
  while (await page.locator('button.next').isEnabled() && pages < 20) {
    const f = await page.locator('table.tags tbody tr a.tagname').first().textContent();
    await page.click('button.next');
    await changed(page, 'table.tags tbody tr a.tagname', f);
    pages++;
  }
  eq('1,000 tags on 10 pages', 10, pages);
  eq('the last page ends with the last name', 't0998', (await rowsText(page, 'table.tags tbody tr a.tagname')).pop());
});

await step('copy to the clipboard', async () => {
  await page.goto(OPEN + '/ui/r/library/many');
  const row = page.locator('tr[data-tag="newest"]');
  await row.waitFor();
  await row.locator('button.copy', { hasText: 'podman' }).click();
  await page.waitForFunction(() => /Copied/.test(document.getElementById('status').textContent));
  eq('podman pull command copied', `podman pull ${HOST}/library/many:newest`, await page.evaluate(() => navigator.clipboard.readText()));
  await row.locator('button.copy', { hasText: 'docker' }).click();
  await page.waitForFunction(() => /docker pull/.test(document.getElementById('status').textContent));
  eq('docker pull command copied', `docker pull ${HOST}/library/many:newest`, await page.evaluate(() => navigator.clipboard.readText()));
  const digest = await row.locator('td.digest code').getAttribute('title');
  await row.locator('td.digest button.copy').click();
  await page.waitForFunction((d) => document.getElementById('status').textContent.includes(d), digest);
  eq('digest copied', digest, await page.evaluate(() => navigator.clipboard.readText()));
});

await step('copy without the Clipboard API (plain http to a host name)', async () => {
  const p = await ctx.newPage();
  await p.addInitScript(() => Object.defineProperty(Navigator.prototype, 'clipboard', { get: () => undefined }));
  await p.goto(OPEN + '/ui/r/library/many');
  const row = p.locator('tr[data-tag="t0990"]');
  await row.waitFor();
  await row.locator('button.copy', { hasText: 'docker' }).click();
  await p.waitForFunction(() => /Cop/.test(document.getElementById('status').textContent));
  eq('fallback copy reported', `Copied: docker pull ${HOST}/library/many:t0990`, await p.locator('#status').textContent());
  eq('fallback copy reached the clipboard', `docker pull ${HOST}/library/many:t0990`, await page.evaluate(() => navigator.clipboard.readText()));
  await p.close();
});

await step('multi-platform index', async () => {
  await page.goto(OPEN + '/ui/r/library/multi');
  const row = page.locator('tr[data-tag="1.0"]');
  await row.waitFor();
  eq('platforms of the index', ['linux/amd64', 'linux/arm64/v8', 'linux/arm/v7'].sort(), (await row.locator('.plat').allTextContents()).sort());
  await row.locator('a.tagname').click();
  await page.waitForURL(OPEN + '/ui/r/library/multi:1.0');
  await page.locator('table.children tbody tr').first().waitFor();
  check('index kind shown', /Image index/.test(await page.locator('main dl.kv').first().textContent()));
  eq('one row per platform', 3, await page.locator('table.children tbody tr').count());
  eq('an index has no layers table', 0, await page.locator('table.layers').count());
  check('index annotations', /three platforms/.test(await page.locator('main').textContent()));
  await shot(page, 'index');
  await page.click('table.children a:text("linux/arm64/v8")');
  await page.waitForURL(/\/ui\/r\/library\/multi@sha256:/);
  await page.locator('table.layers tbody tr').first().waitFor();
  check('child manifest: platform from its config', /linux\/arm64\/v8/.test(await page.locator('main dl.kv').first().textContent()));
  eq('child manifest: two layers', 2, await page.locator('table.layers tbody tr').count());
});

await step('image page: config, layers, history, referrers, raw JSON', async () => {
  await page.evaluate(() => { window.__pwned = undefined; });
  await page.goto(OPEN + '/ui/r/team/web:1.0');
  await page.locator('table.layers tbody tr').first().waitFor();
  const main = await page.locator('main').textContent();
  check('an image, not an index', /KindImageMedia type/.test(await page.locator('main dl.kv').first().textContent()));
  eq('an image has no platforms table', 0, await page.locator('table.children').count());
  eq('full digest shown', WEB_DIGEST, (await page.locator('code.full-digest').textContent()).trim());
  for (const want of ['Berth Tests <tests@berth.example>', '["/srv/app/web"]', '["--listen",":8080"]', '/srv/app', '1000:1000',
    '8080/tcp', '9090/tcp', 'APP_NAME=web', 'org.opencontainers.image.source', 'https://git.example/web',
    'ENTRYPOINT ["/srv/app/web"]', 'COPY app /srv/app', 'ADD file:base in /', `podman pull ${HOST}/team/web:1.0`]) {
    check('image page shows ' + want, main.includes(want));
  }
  check('markup in labels and env stays text', main.includes('<img src=x onerror="window.__pwned=1">'));
  check('no markup from the data ran', await page.evaluate(() => window.__pwned === undefined && !document.querySelector('main img, main script')));
  const layers = await page.locator('table.layers tbody tr').evaluateAll((rs) => rs.map((r) => [r.cells[2].textContent, r.cells[3].textContent]));
  eq('two layers', 2, layers.length);
  check('layer media types and sizes', layers.every(([mt, sz]) => mt === 'application/vnd.oci.image.layer.v1.tar+gzip' && /KiB|MiB/.test(sz)), layers);
  eq('history: three build steps', 3, await page.locator('ol.steps li').count());
  await shot(page, 'image');
  const sig = page.locator('section.referrers[data-artifact-type="application/vnd.dev.cosign.artifact.sig.v1+json"]');
  const sbom = page.locator('section.referrers[data-artifact-type="application/spdx+json"]');
  check('signature group', /Signatures/.test(await sig.locator('h3').textContent()));
  check('SBOM group', /SBOM/.test(await sbom.locator('h3').textContent()));
  check('referrer annotation shown', /MEUCIQDfakesignature/.test(await sig.textContent()));
  await page.locator('.ref-summary a').first().click();
  await page.waitForURL(/#referrers$/);
  check('the summary jumps to the referrers, same page', (await page.locator('table.layers').count()) === 1 && await page.locator('#referrers').isVisible());
  eq('referrers summed up at the top', ['SBOM (SPDX): 1', 'Signatures (cosign): 1'], (await page.locator('.ref-summary a').allTextContents()).sort());
  await page.click('details.raw summary:text("Manifest JSON")');
  const raw = JSON.parse(await page.locator('details.raw pre').first().textContent());
  eq('raw manifest is the document', 2, raw.schemaVersion);
  check('raw manifest is pretty-printed', (await page.locator('details.raw pre').first().textContent()).includes('\n  "'));
  await page.locator('details.raw pre').first().scrollIntoViewIfNeeded();
  await shot(page, 'image-raw');
  await sbom.locator('a').first().click();
  await page.waitForURL(OPEN + '/ui/r/team/web@' + SBOM_DIGEST);
  await page.locator('main dl.kv').first().waitFor();
  check('referrer page shows its artifact type', (await page.locator('main dl.kv').first().textContent()).includes('application/spdx+json'));
  await page.click('main dl.kv a:text("sha256:")');
  await page.waitForURL(OPEN + '/ui/r/team/web@' + WEB_DIGEST);
  await page.locator('table.layers').waitFor();
  check('subject link back to the image', true);
});

await step('deep links', async () => {
  for (const [path, want] of [[`/ui/r/team/web@${WEB_DIGEST}`, 'team/web@sha256:'], ['/ui/r/team/web:1.0', 'team/web:1.0'],
    ['/ui/r/team/web', 'team/web'], ['/ui/storage', 'Storage'], [`/ui/r/team/web@${SIG_DIGEST}`, 'team/web@sha256:']]) {
    const res = await page.goto(OPEN + path);
    eq('deep link status ' + path, 200, res.status());
    await page.locator('main h1').waitFor();
    await settled(page);
    check('deep link ' + path, (await page.locator('main h1').textContent()).startsWith(want));
  }
  await page.goto(OPEN + '/ui/r/no/such/repo');
  await page.locator('main .error').waitFor();
  check('unknown repository says so', /No repository no\/such\/repo/.test(await page.locator('main h1').textContent()));
  await page.goto(OPEN + '/ui/r/team/web:nope');
  await page.locator('main .error').waitFor();
  check('unknown tag says so', /MANIFEST_UNKNOWN|404/.test(await page.locator('main .error').textContent()));
});

await step('storage page', async () => {
  await page.goto(OPEN + '/ui/storage');
  await page.locator('table.storage tbody tr').first().waitFor();
  const names = await rowsText(page, 'table.storage tbody tr td:first-child a');
  check('storage lists the repositories', names.includes('library/multi') && names.includes('team/web'), names.slice(0, 5));
  check('exclusive and shared sizes', /\d (B|KiB|MiB)/.test(await page.locator('tr[data-name="library/multi"] td').nth(1).textContent()));
  check('uploads and GC shown with auth off', /Uploads in progress/.test(await page.locator('main').textContent()));
  await shot(page, 'storage');
});

await step('delete with confirmation, Esc cancels', async () => {
  await page.goto(OPEN + '/ui/r/team/deleteme');
  await page.locator('tr[data-tag="a"]').waitFor();
  eq('no pager for a single page', 0, await page.locator('nav.pager').count());
  await page.locator('tr[data-tag="a"] button.delete').click();
  await page.locator('dialog[open]').waitFor();
  check('the dialog has the focus', await page.evaluate(() => !!document.activeElement.closest('dialog')));
  await shot(page, 'delete-dialog');
  await page.keyboard.press('Escape');
  await page.locator('dialog').waitFor({ state: 'detached' });
  let tags = await (await fetch(OPEN + '/v2/team/deleteme/tags/list')).json();
  eq('Esc deletes nothing', ['a', 'b'], tags.tags.sort());
  await page.locator('tr[data-tag="a"] button.delete').click();
  await page.locator('dialog[open] button:text("Delete tag")').click();
  await page.locator('tr[data-tag="a"]').waitFor({ state: 'detached' });
  tags = await (await fetch(OPEN + '/v2/team/deleteme/tags/list')).json();
  eq('the tag is deleted, the other stays', ['b'], tags.tags);
  await page.locator('tr[data-tag="b"]').waitFor(); // the list, reloaded, has b and not a
  eq('the deleted tag is gone from the list', 0, await page.locator('tr[data-tag="a"]').count());
});

await step('phone layout and keyboard', async () => {
  await page.setViewportSize({ width: 390, height: 844 });
  await page.goto(OPEN + '/ui/r/library/many');
  await page.locator('table.tags tbody tr').first().waitFor();
  check('no table header on a phone', !(await page.locator('table.tags thead').isVisible()));
  check('cells labelled on a phone', (await page.locator('tr[data-tag="newest"] td').nth(1).evaluate((td) => getComputedStyle(td, '::before').content)).includes('Digest'));
  const width = await page.evaluate(() => document.documentElement.scrollWidth);
  check('nothing wider than the phone', width <= 390, width);
  await shot(page, 'repository-phone');
  await page.goto(OPEN + '/ui/r/team/web:1.0');
  await page.locator('table.layers').waitFor();
  const iw = await page.evaluate(() => document.documentElement.scrollWidth);
  check('image page not wider than the phone', iw <= 390, iw);
  await shot(page, 'image-phone');
  await page.setViewportSize({ width: 1200, height: 800 });
  // dark mode follows the system
  await page.emulateMedia({ colorScheme: 'dark' });
  await page.goto(OPEN + '/ui/r/library/many');
  await page.locator('table.tags tbody tr').first().waitFor();
  const bg = await page.evaluate(() => getComputedStyle(document.body).backgroundColor);
  check('dark background when the system is dark', /^rgb\((\d+), (\d+), (\d+)\)$/.test(bg) && bg.match(/\d+/g).every((c) => Number(c) < 60), bg);
  await shot(page, 'repository-dark');
  await page.emulateMedia({ colorScheme: 'light' });
  check('light background otherwise', await page.evaluate(() => getComputedStyle(document.body).backgroundColor) === 'rgb(255, 255, 255)');
  // keyboard: Tab from the top reaches the navigation links, Enter follows one
  await page.goto(OPEN + '/ui/storage');
  await page.locator('table.storage').waitFor();
  let found = false;
  for (let i = 0; i < 4 && !found; i++) {
    await page.keyboard.press('Tab');
    found = await page.evaluate(() => document.activeElement.textContent === 'Repositories' && document.activeElement.tagName === 'A');
  }
  check('Tab reaches the Repositories link', found);
  await page.keyboard.press('Enter');
  await page.waitForURL(OPEN + '/ui/');
  await page.locator('table.repos').waitFor();
  const outline = await page.evaluate(() => getComputedStyle(document.activeElement).outlineStyle);
  check('focus is visible', outline !== 'none' || (await page.evaluate(() => document.activeElement === document.querySelector('main'))), outline);
});

// ---- the registry with auth -------------------------------------------------------------------
await step('auth: login form, wrong password, bob sees what he may pull', async () => {
  const p = await ctx.newPage();
  await p.goto(AUTH + '/ui/');
  await p.locator('form.login').waitFor();
  check('login form asked for', true);
  const direct = await p.evaluate(async () => {
    const r = await fetch('/ui/api/v1/repositories');
    return [r.status, r.headers.get('www-authenticate'), r.headers.get('x-berth-login')];
  });
  eq('API without credentials: 401, no browser dialog', [401, null, 'basic'], direct);
  await shot(p, 'login');
  await p.fill('#login-user', 'bob');
  await p.fill('#login-pass', 'wrong');
  await p.click('form.login button[type=submit]');
  await p.waitForFunction(() => /Wrong user name or password/.test(document.querySelector('form.login .error').textContent));
  check('wrong password refused', true);
  await p.fill('#login-pass', 'bobpw');
  await p.click('form.login button[type=submit]');
  await p.locator('table.repos tbody tr').first().waitFor();
  eq('bob sees team/* only', ['team/api', 'team/web'], (await rowsText(p, 'table.repos tbody tr td:first-child a')).sort());
  check('signed in as bob', /Signed in as bob/.test(await p.locator('#who').textContent()));
  await p.goto(AUTH + '/ui/r/team/web');
  await p.locator('table.tags tbody tr').first().waitFor();
  eq('bob may not delete: no delete buttons', 0, await p.locator('button.delete').count());
  const refused = await p.evaluate(async () => {
    const r = await fetch('/v2/team/web/manifests/old', { method: 'DELETE', headers: { Authorization: 'Basic ' + sessionStorage.getItem('berth.credentials') } });
    return r.status;
  });
  eq('a DELETE by bob is refused', 403, refused);
  eq('the tag is still there', 1, await p.locator('tr[data-tag="old"]').count());
  await p.goto(AUTH + '/ui/r/secret/vault');
  await p.locator('main .error').waitFor();
  eq('bob does not see secret/vault', 0, await p.locator('table.tags').count());
  const api = await p.evaluate(async () => (await fetch('/ui/api/v1/repositories/secret/vault/tags',
    { headers: { Authorization: 'Basic ' + sessionStorage.getItem('berth.credentials') } })).status);
  check('the API refuses bob secret/vault', api === 403 || api === 404, api);
  await p.goto(AUTH + '/ui/storage');
  await p.locator('table.storage tbody tr').first().waitFor();
  eq('bob\'s storage page: team/* only', ['team/api', 'team/web'], (await rowsText(p, 'table.storage tbody tr td:first-child a')).sort());
  check('no uploads or GC for bob', /shown only to a user who may pull every repository/.test(await p.locator('main').textContent()));
  await p.click('#who button:text("Log out")');
  await p.locator('form.login').waitFor();
  check('logged out', (await p.evaluate(() => sessionStorage.getItem('berth.credentials'))) === null);
  await p.close();
});

await step('auth: alice may delete', async () => {
  const p = await ctx.newPage();
  await p.goto(AUTH + '/ui/r/team/web');
  await p.locator('form.login').waitFor();
  await p.fill('#login-user', 'alice');
  await p.fill('#login-pass', 'alicepw');
  await p.press('#login-pass', 'Enter');
  await p.locator('tr[data-tag="old"]').waitFor();
  check('login lands on the page asked for', p.url() === AUTH + '/ui/r/team/web');
  await p.locator('tr[data-tag="old"] button.delete').click();
  await p.locator('dialog[open] button:text("Delete tag")').click();
  await p.locator('tr[data-tag="old"]').waitFor({ state: 'detached' });
  const tags = await (await fetch(AUTH + '/v2/team/web/tags/list', { headers: { Authorization: 'Basic ' + Buffer.from('alice:alicepw').toString('base64') } })).json();
  eq('alice deleted the tag', ['1.0', '1.1'], tags.tags.sort());
  await p.goto(AUTH + '/ui/');
  await p.locator('table.repos tbody tr').first().waitFor();
  check('alice sees secret/vault', (await rowsText(p, 'table.repos tbody tr td:first-child a')).includes('secret/vault'));
  await shot(p, 'repositories-alice');
  await p.close();
});

await step('anonymous pull allowed: no login needed, Log in offered; --no-deletes: no delete', async () => {
  const p = await ctx.newPage();
  await p.goto(PUB + '/ui/');
  await p.locator('table.repos tbody tr').first().waitFor();
  eq('anonymous sees public/* only', ['public/app'], await rowsText(p, 'table.repos tbody tr td:first-child a'));
  eq('no login form', 0, await p.locator('form.login').count());
  await p.click('#who button:text("Log in")');
  await p.locator('form.login').waitFor();
  await p.fill('#login-user', 'alice');
  await p.fill('#login-pass', 'alicepw');
  await p.press('#login-pass', 'Enter');
  await p.locator('table.repos tbody tr').nth(1).waitFor();
  eq('alice sees both', ['private/app', 'public/app'], (await rowsText(p, 'table.repos tbody tr td:first-child a')).sort());
  await p.click('table.repos a:text-is("public/app")');
  await p.locator('tr[data-tag="2.0"]').waitFor();
  eq('a server with --no-deletes offers no delete, even to alice', 0, await p.locator('button.delete').count());
  await p.locator('tr[data-tag="2.0"] a.tagname').click();
  await p.locator('main dl.kv').first().waitFor();
  await settled(p);
  eq('nor on the image page', 0, await p.locator('button.delete').count());
  await p.goto(PUB + '/ui/storage');
  await p.locator('table.storage').waitFor();
  const gc = await p.locator('main dl.kv').textContent();
  check('storage page: the last gc run, when and what it freed', /Last GC.*(ago|now).*GC freed0 B: 0 blobs, 0 manifests/.test(gc), gc);
  await shot(p, 'storage-gc');
  await p.close();
  const q = await ctx.newPage();
  await q.goto(PUB + '/ui/r/private/app');
  await q.locator('form.login').waitFor();
  check('a page anonymous may not see asks for a login', /needs a login/.test(await q.locator('form.login .error').textContent()));
  await q.close();
});

await step('nothing fetched from elsewhere, no script errors', async () => {
  eq('requests to other hosts', [], external);
  eq('page errors', [], errors);
});

await ctx.close();
rmSync(profile, { recursive: true, force: true });
console.log(`${passed} passed, ${failed} failed`);
process.exit(failed ? 1 : 0);
