// The patients' page in a real browser (Debian's Chromium through playwright-core) against a
// real physioregd serving its embedded copy of client/web, with the demo register loaded.
// Run by CTest as web.page (tests/web/CMakeLists.txt); by hand:
//   PHYSIOREG_BUILD_DIR=build/dev node --test tests/web/page.test.mjs
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { after, before, describe, test } from 'node:test';

import {
  apiGet, artifactPath, decodeQr, launchBrowser, loadBrowserModules, runCli, startRegistry,
} from './harness.mjs';

const AXE_TAGS = ['wcag2a', 'wcag2aa', 'wcag21aa', 'wcag22aa'];
const EDMONTON = { latitude: 53.5461, longitude: -113.4938 };

let chromium, AxeBuilder, registry, browser, base;
const offOrigin = []; // requests that left the page's origin
const consoleErrors = []; // console errors and uncaught exceptions, with the page they came from
let expectFailedRequest = false; // Chromium logs a refused request (HTTP 4xx) as a console error

before(async () => {
  ({ chromium, AxeBuilder } = await loadBrowserModules());
  registry = await startRegistry();
  base = registry.http;
  browser = await launchBrowser(chromium);
});

after(async () => {
  await browser?.close().catch(() => {});
  await registry?.stop();
});

// A browser context that records every request off the origin and every console error.
async function newContext(options = {}) {
  const context = await browser.newContext({
    viewport: { width: 1280, height: 900 }, locale: 'en-CA', timezoneId: 'America/Edmonton', ...options,
  });
  context.on('request', (request) => {
    const url = request.url();
    if (!url.startsWith(`${base}/`) && url !== base) offOrigin.push(url);
  });
  context.on('page', (page) => watchPage(page));
  // Waits are for events, not timings: a generous cap only turns a hang into a failure with a
  // message (a loaded CI machine, the ASan build) long before CTest's own timeout.
  context.setDefaultTimeout(120_000);
  return context;
}

function watchPage(page) {
  page.on('console', (m) => {
    if (m.type() !== 'error') return;
    if (expectFailedRequest && /^Failed to load resource: the server responded with a status of 400/.test(m.text())) return;
    consoleErrors.push(`${page.url()}: ${m.text()}`);
  });
  page.on('pageerror', (e) => consoleErrors.push(`${page.url()}: uncaught ${e.message}`));
}

async function newPage(options) {
  const context = await newContext(options);
  const page = await context.newPage();
  return { context, page };
}

// Searches through the form (as a patient would) and waits for the answer.
async function search(page, { name = '', where = '', dn = true } = {}) {
  await page.fill('#q', name);
  await page.fill('#where', where);
  await page.setChecked('#dn', dn);
  await page.click('#search-button');
  await waitForResults(page);
}

async function waitForResults(page) {
  await page.waitForFunction(() => document.getElementById('results').getAttribute('aria-busy') === 'false' &&
    !document.querySelector('#message .loading'));
}

const cardIds = (page) => page.$$eval('#result-list .card', (cards) => cards.map((c) => c.dataset.id));
const statusText = (page) => page.textContent('#status');

async function axeCheck(page, what) {
  const results = await new AxeBuilder({ page }).withTags(AXE_TAGS).analyze();
  const bad = results.violations.filter((v) => v.impact === 'serious' || v.impact === 'critical');
  assert.deepEqual(bad.map((v) => `${v.id} (${v.impact}): ${v.help} — ${v.nodes.map((n) => n.target.join(' ')).join(' | ')}`),
    [], `axe on ${what}`);
}

async function noHorizontalScroll(page, what) {
  const { scroll, client } = await page.evaluate(() => ({
    scroll: document.documentElement.scrollWidth, client: document.documentElement.clientWidth,
  }));
  assert.ok(scroll <= client, `${what}: page is ${scroll}px wide in a ${client}px viewport`);
}

// A plain PBM image of QR modules with a four-module quiet zone, `scale` pixels a module.
function pbm(modules, scale) {
  const n = (modules.length + 8) * scale;
  const rows = [];
  for (let y = 0; y < n; y += 1) {
    const row = [];
    for (let x = 0; x < n; x += 1) {
      const mx = Math.floor(x / scale) - 4;
      const my = Math.floor(y / scale) - 4;
      row.push(modules[my]?.[mx] ? 1 : 0);
    }
    rows.push(row.join(' '));
  }
  return `P1\n${n} ${n}\n${rows.join('\n')}\n`;
}

// The verdict's date as the page writes it (the registry's today, from the API answer).
function longDate(iso, locale) {
  const [y, m, d] = iso.split('-').map(Number);
  return new Intl.DateTimeFormat(locale, { day: 'numeric', month: 'long', year: 'numeric', timeZone: 'UTC' })
    .format(new Date(Date.UTC(y, m - 1, d)));
}

async function setAuthorizationStatus(id, status) {
  await runCli(registry, ['set-authorization-status', id, '--activity', 'DRY_NEEDLING',
    '--status', status, '--reason', 'browser test']);
}

// The registry's own answer, for what the page must say.
function verify(id) {
  return apiGet(registry, `/v1/practitioners/${encodeURIComponent(id)}:verify?activity=DRY_NEEDLING`);
}

describe('patients\' page', () => {
  test('an accent-free search finds an accented name, typos forgiven, with a dated verdict', async () => {
    const { context, page } = await newPage();
    await page.goto(`${base}/`);
    await page.waitForSelector('#message .start');
    await search(page, { name: 'helene leblanc', dn: false });
    const names = await page.$$eval('#result-list .card-name', (h) => h.map((e) => e.textContent));
    assert.ok(names.includes('Hélène Leblanc'), `results: ${names.join(', ')}`);
    await search(page, { name: 'heleen leblnac', dn: false });
    const typo = await page.$$eval('#result-list .card-name', (h) => h.map((e) => e.textContent));
    assert.ok(typo.includes('Hélène Leblanc'), `results with typos: ${typo.join(', ')}`);

    // The card's verdict is the registry's, in words, dated with the registry's today.
    const card = page.locator('#result-list .card', { hasText: 'Hélène Leblanc' }).first();
    const id = await card.getAttribute('data-id');
    const v = await verify(id);
    const verdict = await card.locator('.verdict').textContent();
    assert.ok(verdict.includes(longDate(v.asOf, 'en-GB')), `verdict "${verdict}" is not dated ${v.asOf}`);
    assert.equal(await card.locator('.verdict').getAttribute('data-reason'), v.reason);
    assert.match(verdict, v.authorized ? /Authorized for dry needling today/ : /Not authorized/);
    assert.match(await statusText(page), /physiotherapists? found/);

    // No one by that name.
    await search(page, { name: 'zzyzx qqqq', dn: false });
    assert.deepEqual(await cardIds(page), []);
    assert.match(await page.textContent('#message'), /No one by the name “zzyzx qqqq” matches/);
    assert.match(await statusText(page), /No one by the name/);

    // The registry refuses a name with no letters or digits: the page says why, offers a retry.
    expectFailedRequest = true;
    await search(page, { name: '--', dn: false });
    expectFailedRequest = false;
    assert.match(await page.textContent('#message .error'), /^The search could not be run: .*name/);
    assert.match(await statusText(page), /^The search could not be run/);
    assert.equal(await page.textContent('#message .error button'), 'Try again');
    await context.close();
  });

  test('the dry-needling filter changes the results to match the register', async () => {
    const { context, page } = await newPage();
    await page.goto(`${base}/`);
    await search(page, { where: 'Edmonton', dn: true });
    const on = await cardIds(page);
    const onApi = await apiGet(registry, '/v1/practitioners?city=Edmonton&activity=DRY_NEEDLING&page_size=10');
    const onTotal = onApi.totalSize;
    assert.deepEqual(on, onApi.practitioners.map((p) => p.registrationId));
    assert.match(await statusText(page), new RegExp(`^${onTotal} physiotherapists found`));
    // Everyone listed with the filter on is authorized today.
    const reasons = await page.$$eval('#result-list .verdict', (v) => v.map((e) => e.dataset.reason));
    assert.ok(reasons.length > 0 && reasons.every((r) => r === 'AUTHORIZED'), reasons.join(','));
    assert.equal(new URL(page.url()).searchParams.get('dn'), null);

    // Unchecking the box searches again at once, and lists people who are not authorized.
    await page.uncheck('#dn');
    await page.waitForFunction(() => new URL(location.href).searchParams.get('dn') === '0');
    await waitForResults(page);
    const offApi = await apiGet(registry, '/v1/practitioners?city=Edmonton&page_size=10');
    const offTotal = offApi.totalSize;
    assert.ok(Number(offTotal) > Number(onTotal), `${offTotal} vs ${onTotal}`);
    assert.match(await statusText(page), new RegExp(`^${offTotal} physiotherapists found`));
    assert.deepEqual(await cardIds(page), offApi.practitioners.map((p) => p.registrationId));

    // A name found only without the filter: the page says so and offers to show them.
    let provisional, name, byName;
    for (const p of (await apiGet(registry, '/v1/practitioners?register=PROVISIONAL&page_size=100')).practitioners) {
      const q = `/v1/practitioners?name=${encodeURIComponent(`${p.givenName} ${p.familyName}`)}&fuzzy=true`;
      if (Number((await apiGet(registry, `${q}&activity=DRY_NEEDLING`)).totalSize || 0) === 0) {
        [provisional, name, byName] = [p, `${p.givenName} ${p.familyName}`, await apiGet(registry, q)];
        break;
      }
    }
    assert.ok(provisional, 'a provisional registrant whose name no authorized one shares');
    await search(page, { name, dn: true });
    assert.deepEqual(await cardIds(page), []);
    const n = Number(byName.totalSize);
    assert.match(await page.textContent('#message'),
      n === 1 ? /1 physiotherapist on the register matches, but is not authorized for dry needling today/
        : new RegExp(`${n} physiotherapists on the register match, but none is authorized`));
    await page.click('#message button');
    await waitForResults(page);
    assert.equal(await page.isChecked('#dn'), false);
    assert.ok((await cardIds(page)).includes(provisional.registrationId));
    await context.close();
  });

  test('paging walks every result once; previous comes back', async () => {
    const { context, page } = await newPage();
    await page.goto(`${base}/`);
    await search(page, { where: 'Calgary', dn: false });
    const total = Number((await apiGet(registry, '/v1/practitioners?city=Calgary')).totalSize);
    assert.ok(total > 20, `Calgary has ${total}`);
    const first = await cardIds(page);
    const seen = [...first];
    let pages = 1;
    while (!(await page.isDisabled('#next'))) {
      await page.click('#next');
      await waitForResults(page);
      pages += 1;
      assert.equal(await page.evaluate(() => document.activeElement.id), 'results-heading');
      assert.match(await page.textContent('#page-info'), new RegExp(`^Page ${pages} of `));
      seen.push(...await cardIds(page));
    }
    assert.equal(seen.length, total);
    assert.equal(new Set(seen).size, total);
    assert.match(await statusText(page), new RegExp(`of ${total}\\.$`));
    for (let i = pages; i > 1; i -= 1) {
      await page.click('#prev');
      await waitForResults(page);
    }
    assert.deepEqual(await cardIds(page), first);
    assert.ok(await page.isDisabled('#prev'));
    await context.close();
  });

  test('a detail opens with authorizations, training and history; back returns to the results', async () => {
    const { context, page } = await newPage();
    await page.goto(`${base}/`);
    await search(page, { name: 'helene leblanc' });
    const card = page.locator('#result-list .card', { hasText: 'Hélène Leblanc' }).first();
    const id = await card.getAttribute('data-id');
    await card.locator('.card-name a').click();
    await page.waitForSelector('#history-list li');
    assert.equal(new URL(page.url()).searchParams.get('id'), id);
    assert.equal(await page.textContent('#detail-heading'), 'Hélène Leblanc');
    assert.equal(await page.evaluate(() => document.activeElement.id), 'detail-heading');
    const entry = await apiGet(registry, `/v1/practitioners/${id}`);
    const dn = entry.authorizations.find((a) => a.activity === 'DRY_NEEDLING');
    const body = await page.textContent('#detail-body');
    for (const r of dn.training) assert.ok(body.includes(r.course), `training ${r.course}`);
    assert.ok(body.includes('Dry needling'));
    const events = (await apiGet(registry, `/v1/practitioners/${id}/history`)).events;
    assert.equal(await page.locator('#history-list li').count(), events.length);
    assert.equal(await page.inputValue('#share-url'), `${base}/?id=${id}`);
    // The QR code beside it reads back as the same link (decoded by zbarimg from a screenshot).
    const qrPng = artifactPath('web-entry-qr.png');
    await page.locator('svg.qr').screenshot({ path: qrPng });
    assert.equal(await decodeQr(qrPng), `${base}/?id=${id}`);
    assert.ok(!body.includes('@example'), 'private contact shown');
    await page.goBack();
    await page.waitForSelector('#search-view:not([hidden])');
    await waitForResults(page);
    assert.equal(await page.inputValue('#q'), 'helene leblanc');
    assert.ok((await cardIds(page)).includes(id));
    await context.close();
  });

  test('the shared link opens the entry with the live verdict', async () => {
    // One authorized registrant, one on the provisional register, one unknown number.
    const authorized = (await apiGet(registry, '/v1/practitioners?activity=DRY_NEEDLING&page_size=1')).practitioners[0];
    const provisionals = (await apiGet(registry, '/v1/practitioners?register=PROVISIONAL&page_size=100')).practitioners;
    let provisional;
    for (const p of provisionals) {
      if ((await verify(p.registrationId)).reason === 'REGISTER_RESTRICTS_ACTIVITY') { provisional = p; break; }
    }
    assert.ok(provisional, 'the demo register has an active provisional registrant');
    const { context, page } = await newPage();

    const link = `${base}/?id=${authorized.registrationId}`;
    await page.goto(link);
    await page.waitForSelector('#detail-heading');
    const v = await verify(authorized.registrationId);
    assert.equal(v.reason, 'AUTHORIZED');
    const techniques = (v.authorization.techniques || []).map((x) => (x === 'IMS' ? 'IMS' : 'trigger point dry needling')).join(', ');
    const verdict = (await page.textContent('#detail-body .verdict-text')).trim();
    assert.ok(verdict.startsWith(`✓Authorized for dry needling today, ${longDate(v.asOf, 'en-GB')}`), verdict);
    if (techniques) assert.ok(verdict.endsWith(`techniques: ${techniques}`), verdict);

    // The link carries no verdict: once the regulator suspends the authorization, the same link
    // says so.
    await setAuthorizationStatus(authorized.registrationId, 'SUSPENDED');
    await page.goto(link);
    await page.waitForSelector('#detail-heading');
    assert.equal((await verify(authorized.registrationId)).reason, 'AUTHORIZATION_SUSPENDED');
    assert.match(await page.textContent('#detail-body .verdict'),
      /Not authorized today, .*: the dry needling authorization is suspended/);
    await setAuthorizationStatus(authorized.registrationId, 'AUTHORIZED');

    await page.goto(`${base}/?id=${provisional.registrationId}`);
    await page.waitForSelector('#detail-heading');
    assert.match(await page.textContent('#detail-body .verdict'),
      /Not authorized today, .*: on the provisional register, dry needling is not permitted/);

    await page.goto(`${base}/?id=PT-0000000`);
    await page.waitForSelector('#detail-heading');
    assert.equal(await page.textContent('#detail-heading'), 'No registrant with number PT-0000000');

    // A registration number typed in the search box opens the entry too.
    await page.goto(`${base}/`);
    await page.fill('#q', authorized.registrationId.toLowerCase());
    await page.press('#q', 'Enter');
    await page.waitForSelector('#detail-heading');
    assert.equal(new URL(page.url()).searchParams.get('id'), authorized.registrationId);
    await context.close();
  });

  test('keyboard alone: search, filter, open an entry, come back', async () => {
    const { context, page } = await newPage();
    await page.goto(`${base}/`);
    const focused = () => page.evaluate(() => document.activeElement && (document.activeElement.id ||
      document.activeElement.closest('[data-id]')?.dataset.id || document.activeElement.tagName));
    async function tabTo(want, max = 200) {
      for (let i = 0; i < max; i += 1) {
        await page.keyboard.press('Tab');
        if (await focused() === want) return;
      }
      assert.fail(`Tab never reached ${want}`);
    }
    await tabTo('where');
    await page.keyboard.type('Calgary');
    await tabTo('dn');
    await page.keyboard.press('Space'); // off: everyone practising in Calgary
    assert.equal(await page.isChecked('#dn'), false);
    await tabTo('search-button');
    await page.keyboard.press('Enter');
    await waitForResults(page);
    assert.equal(new URL(page.url()).searchParams.get('dn'), '0');
    const ids = await cardIds(page);
    assert.ok(ids.length > 0);
    // The skip link and visible focus: the focused control has an outline.
    await tabTo(ids[0]);
    const outline = await page.evaluate(() => getComputedStyle(document.activeElement).outlineStyle);
    assert.notEqual(outline, 'none');
    await page.keyboard.press('Enter');
    await page.waitForSelector('#detail-heading');
    assert.equal(await focused(), 'detail-heading');
    await tabTo('back-link');
    await page.keyboard.press('Enter');
    await page.waitForSelector('#search-view:not([hidden])');
    await waitForResults(page);
    assert.deepEqual(await cardIds(page), ids);
    assert.equal(await focused(), ids[0], 'focus back on the entry it left');
    // The next page, by keyboard.
    await tabTo('next');
    await page.keyboard.press('Enter');
    await waitForResults(page);
    assert.match(await page.textContent('#page-info'), /^Page 2 of /);
    assert.notDeepEqual(await cardIds(page), ids);
    // About dry needling opens from the keyboard.
    await page.focus('#about summary');
    await page.keyboard.press('Enter');
    assert.equal(await page.getAttribute('#about', 'open'), '');
    assert.match(await page.textContent('#about [data-lang="en"]'), /pneumothorax/);
    await context.close();
  });

  test('near me asks only on a click, then sorts by distance', async () => {
    const { context, page } = await newPage({ geolocation: EDMONTON });
    let asked = 0;
    await page.exposeFunction('physioregGeoAsked', () => { asked += 1; });
    await page.addInitScript(() => {
      const real = navigator.geolocation.getCurrentPosition.bind(navigator.geolocation);
      navigator.geolocation.getCurrentPosition = (...a) => { window.physioregGeoAsked(); return real(...a); };
    });
    await context.grantPermissions(['geolocation'], { origin: base });
    await page.goto(`${base}/`);
    await search(page, { name: 'a' });
    assert.equal(asked, 0, 'geolocation used before the click');
    await page.click('#near-button');
    await page.waitForFunction(() => document.querySelector('#result-list .distance'));
    await waitForResults(page);
    assert.equal(asked, 1);
    const km = await page.$$eval('#result-list .distance', (d) => d.map((e) => parseFloat(e.textContent)));
    assert.ok(km.length > 0);
    assert.deepEqual(km, [...km].sort((a, b) => a - b));
    assert.ok(!new URL(page.url()).search.includes('53.'), 'location put in the URL');
    await context.close();
  });

  test('French: chosen from the browser, switchable, kept in the link', async () => {
    const { context, page } = await newPage({ locale: 'fr-CA' });
    await page.goto(`${base}/`);
    assert.equal(await page.getAttribute('html', 'lang'), 'fr');
    assert.equal(await page.textContent('h1'), 'Trouver un physiothérapeute autorisé');
    await search(page, { name: 'helene leblanc' });
    assert.match(await statusText(page), /physiothérapeutes? trouvés?/);
    assert.match(await page.textContent('#result-list .verdict'), /Autorisé à l’aiguilletage à sec aujourd’hui/);
    await page.click('#lang-switch');
    assert.equal(await page.getAttribute('html', 'lang'), 'en');
    assert.equal(new URL(page.url()).searchParams.get('lang'), 'en');
    await waitForResults(page);
    assert.match(await page.textContent('#result-list .verdict'), /Authorized for dry needling today/);
    // The choice is remembered: English again on a later visit without ?lang=.
    await page.goto(`${base}/?q=helene`);
    assert.equal(await page.getAttribute('html', 'lang'), 'en');
    assert.equal(await page.textContent('h1'), 'Find an authorized physiotherapist');
    await waitForResults(page);
    await page.click('#lang-switch');
    assert.equal(new URL(page.url()).searchParams.get('lang'), 'fr');
    assert.equal(await page.textContent('#search-button'), 'Chercher');
    await context.close();
  });

  for (const lang of ['en', 'fr']) {
    test(`axe (${AXE_TAGS.join(', ')}) finds nothing serious on results and entry, ${lang}`, async () => {
      const { context, page } = await newPage({ locale: lang === 'fr' ? 'fr-CA' : 'en-CA' });
      await page.goto(`${base}/?lang=${lang}`);
      await axeCheck(page, `start page (${lang})`);
      await search(page, { name: 'le', dn: false });
      await page.click('#about summary');
      await axeCheck(page, `results (${lang})`);
      await page.click('#result-list .card-name a');
      await page.waitForSelector('#history-list li');
      await axeCheck(page, `entry (${lang})`);
      await context.close();
    });
  }

  test('screenshots at 1280 and 375 px; reflow at 320 px without horizontal scroll', async () => {
    const id = (await apiGet(registry, '/v1/practitioners?name=helene%20leblanc')).practitioners[0].registrationId;
    for (const width of [1280, 375, 320]) {
      const { context, page } = await newPage({ viewport: { width, height: 900 } });
      await page.goto(`${base}/?q=helene&dn=0`);
      await waitForResults(page);
      await noHorizontalScroll(page, `results at ${width}px`);
      if (width !== 320) await page.screenshot({ path: artifactPath(`web-results-${width}.png`), fullPage: true });
      await page.goto(`${base}/?id=${id}`);
      await page.waitForSelector('#history-list li');
      await noHorizontalScroll(page, `entry at ${width}px`);
      if (width !== 320) await page.screenshot({ path: artifactPath(`web-entry-${width}.png`), fullPage: true });
      await context.close();
    }
  });

  test('the QR encoder: links of every version it makes (1 to 10) read back', async () => {
    const { qrModules } = await import('../../client/web/qr.js');
    // Byte capacities at level M of versions 1..10; a link of each length needs that version.
    const capacity = [14, 26, 42, 62, 84, 106, 122, 152, 180, 213];
    for (const [i, length] of capacity.entries()) {
      const text = `https://register.example/?id=PT-${'1234567890'.repeat(30)}`.slice(0, length);
      const modules = qrModules(text);
      assert.equal(modules.length, 17 + 4 * (i + 1), `version for ${length} bytes`);
      const file = artifactPath(`qr-v${i + 1}.pbm`);
      writeFileSync(file, pbm(modules, 3));
      assert.equal(await decodeQr(file), text, `version ${i + 1}`);
    }
    assert.equal(qrModules('x'.repeat(214)), null);
  });

  test('no request left the origin and the console had no error', () => {
    assert.deepEqual(offOrigin, []);
    assert.deepEqual(consoleErrors, []);
  });
});
