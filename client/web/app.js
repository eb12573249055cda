// The patients' page: search the public register and read an entry with its live verdict for
// dry needling. Talks only to this origin's /v1 JSON API (the proto3 JSON mapping: fields with
// default values are absent, int64 values are strings). No framework, no build step.
import { STRINGS, LANGUAGES, LOCALES } from './i18n.js';
import { qrSvg } from './qr.js';

const ACTIVITY = 'DRY_NEEDLING';
const PAGE_SIZE = 10;
const HISTORY_PAGE_SIZE = 20;

const $ = (id) => document.getElementById(id);

// ---------------------------------------------------------------------------------------------
// Language of the page: ?lang= wins, then the saved choice, then the browser's languages.

function initialLanguage() {
  const fromUrl = new URLSearchParams(location.search).get('lang');
  if (fromUrl === 'en' || fromUrl === 'fr') return fromUrl;
  try {
    const saved = localStorage.getItem('physioreg.lang');
    if (saved === 'en' || saved === 'fr') return saved;
  } catch { /* storage may be disabled */ }
  for (const l of navigator.languages || [navigator.language || 'en']) {
    const base = String(l).toLowerCase().slice(0, 2);
    if (base === 'fr' || base === 'en') return base;
  }
  return 'en';
}

let lang = initialLanguage();
const S = () => STRINGS[lang];
function t(key, args) {
  const v = S()[key];
  return typeof v === 'function' ? v(args || {}) : v;
}

function formatDate(iso) {
  // Dates are civil dates (YYYY-MM-DD): format them in UTC so no time zone moves the day.
  const m = /^(\d{4})-(\d{2})-(\d{2})$/.exec(iso || '');
  if (!m) return iso || '';
  const d = new Date(Date.UTC(+m[1], +m[2] - 1, +m[3]));
  return new Intl.DateTimeFormat(lang === 'fr' ? 'fr-CA' : 'en-GB',
    { day: 'numeric', month: 'long', year: 'numeric', timeZone: 'UTC' }).format(d);
}

function formatTimestampDate(ts) {
  const d = new Date(ts);
  if (Number.isNaN(d.getTime())) return ts || '';
  return new Intl.DateTimeFormat(lang === 'fr' ? 'fr-CA' : 'en-GB',
    { day: 'numeric', month: 'long', year: 'numeric' }).format(d);
}

function formatNumber(n, digits = 0) {
  return new Intl.NumberFormat(LOCALES[lang],
    { maximumFractionDigits: digits, minimumFractionDigits: digits }).format(n);
}

function languageName(name) {
  return lang === 'fr' && LANGUAGES[name] ? LANGUAGES[name] : name;
}

function enumText(table, value) {
  return (S()[table] && S()[table][value]) || (value || '').toLowerCase().replaceAll('_', ' ');
}

function displayName(p) {
  const given = p.givenName || '';
  const preferred = p.preferredName && p.preferredName !== given ? ` (${p.preferredName})` : '';
  return `${given}${preferred} ${p.familyName || ''}`.trim();
}

// ---------------------------------------------------------------------------------------------
// DOM helpers: every text goes in through textContent.

function el(tag, attrs, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k === 'class') e.className = v;
    else if (k === 'text') e.textContent = v;
    else if (k.startsWith('on')) e.addEventListener(k.slice(2), v);
    else e.setAttribute(k, v === true ? '' : v);
  }
  for (const c of children.flat()) {
    if (c === undefined || c === null || c === false) continue;
    e.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return e;
}

function applyStaticStrings() {
  document.documentElement.lang = lang;
  for (const e of document.querySelectorAll('[data-i18n]')) e.textContent = t(e.dataset.i18n);
  for (const e of document.querySelectorAll('[data-i18n-aria]')) {
    e.setAttribute('aria-label', t(e.dataset.i18nAria));
  }
  for (const e of document.querySelectorAll('[data-lang]')) e.hidden = e.dataset.lang !== lang;
  const sw = $('lang-switch');
  sw.textContent = t('switchTo');
  sw.lang = t('switchLang');
  document.title = t('title');
  fillLanguages();
}

function fillLanguages() {
  const select = $('speaks');
  const current = select.value;
  select.replaceChildren(el('option', { value: '', text: t('anyLanguage') }));
  const names = Object.keys(LANGUAGES)
    .sort((a, b) => languageName(a).localeCompare(languageName(b), LOCALES[lang]));
  for (const name of names) select.append(el('option', { value: name, text: languageName(name) }));
  select.value = current;
}

// ---------------------------------------------------------------------------------------------
// The JSON API.

class ApiError extends Error {
  constructor(httpStatus, status, message) {
    super(message);
    this.httpStatus = httpStatus;
    this.status = status;
  }
}

async function api(path, init) {
  let response;
  try {
    response = await fetch(path, { headers: { Accept: 'application/json' }, ...init });
  } catch (e) {
    throw new ApiError(0, 'NETWORK', String(e && e.message || e));
  }
  let body = null;
  try { body = await response.json(); } catch { /* not JSON */ }
  if (!response.ok) {
    const err = body && body.error || {};
    throw new ApiError(response.status, err.status || '', err.message || response.statusText);
  }
  return body || {};
}

function errorText(e) {
  if (!(e instanceof ApiError)) return t('errorOther', { message: String(e && e.message || e) });
  if (e.httpStatus === 0) return t('errorNetwork');
  if (e.httpStatus === 503) return t('errorStarting');
  if (e.httpStatus === 429) return t('errorBusy');
  if (e.httpStatus === 400) return t('errorInput', { message: e.message });
  return t('errorOther', { message: e.message || String(e.httpStatus) });
}

async function verifyMany(ids) {
  if (ids.length === 0) return [];
  const body = JSON.stringify({ requests: ids.map((registrationId) => ({ registrationId, activity: ACTIVITY })) });
  const r = await api('/v1/practitioners:batchVerify',
    { method: 'POST', body, headers: { Accept: 'application/json', 'Content-Type': 'application/json' } });
  return r.responses || [];
}

// ---------------------------------------------------------------------------------------------
// The verdict: what the registry answered, said plainly, dated with the registry's today.

function verdictText(v) {
  const date = formatDate(v.asOf);
  const auth = v.authorization || {};
  const techniques = (auth.techniques || []).map((x) => enumText('techniques', x)).join(t('listSep'));
  const permit = v.permitStatus ? enumText('permitStatus', v.permitStatus) : t('permitInactiveLower');
  const fn = S().verdict[v.reason] || S().verdict.UNKNOWN;
  return fn({ date, techniques, permit, granted: formatDate(auth.grantedOn), expired: formatDate(auth.expiresOn) });
}

function verdictBlock(v, headingTag) {
  const ok = v.authorized === true;
  const conditions = (v.authorization && v.authorization.conditions) || [];
  return el('div', { class: `verdict ${ok ? 'ok' : 'no'}`, 'data-reason': v.reason || '' },
    el(headingTag || 'p', { class: 'verdict-text' },
      el('span', { class: 'verdict-icon', 'aria-hidden': 'true', text: ok ? '✓' : '✕' }),
      el('span', { text: verdictText(v) })),
    ok && conditions.length
      ? el('div', { class: 'verdict-conditions' },
        el('p', { class: 'label', text: t('authConditions') }),
        el('ul', {}, conditions.map((c) => el('li', { text: c }))))
      : null);
}

// ---------------------------------------------------------------------------------------------
// Search state. The criteria live in the URL (shareable, back button); page tokens are kept in
// a stack in history.state, since a token only works with the criteria it was issued for.

const criteria = {
  q: '', where: '', speaks: '', dn: true, near: null, radius: '25',
};
let pageTokens = [''];
let lastOpenedId = null; // the entry opened from the results, to return the focus to its link
let searchSerial = 0;
let searchShown = false; // a search's answer (results, none or an error) is on screen

function criteriaFromUrl() {
  const p = new URLSearchParams(location.search);
  criteria.q = p.get('q') || '';
  criteria.where = p.get('where') || '';
  criteria.speaks = p.get('speaks') || '';
  criteria.dn = p.get('dn') !== '0';
  if (p.get('radius')) criteria.radius = p.get('radius');
}

function criteriaToForm() {
  $('q').value = criteria.q;
  $('where').value = criteria.where;
  $('speaks').value = criteria.speaks;
  if ($('speaks').value !== criteria.speaks) $('speaks').value = '';
  $('dn').checked = criteria.dn;
  $('radius').value = criteria.radius;
}

function criteriaFromForm() {
  criteria.q = $('q').value.trim();
  criteria.where = $('where').value.trim();
  criteria.speaks = $('speaks').value;
  criteria.dn = $('dn').checked;
  criteria.radius = $('radius').value;
}

function hasCriteria() {
  return !!(criteria.q || criteria.where || criteria.speaks || criteria.dn || criteria.near);
}

function searchUrl() {
  const p = new URLSearchParams();
  if (criteria.q) p.set('q', criteria.q);
  if (criteria.where) p.set('where', criteria.where);
  if (criteria.speaks) p.set('speaks', criteria.speaks);
  if (!criteria.dn) p.set('dn', '0');
  const keepLang = new URLSearchParams(location.search).get('lang');
  if (keepLang) p.set('lang', keepLang);
  const s = p.toString();
  return s ? `/?${s}` : '/';
}

// A Canadian postal code or its beginning ("T5K", "T5K 2M") filters by postal code; anything
// else is a city.
const POSTAL_PREFIX = /^[A-Za-z]\d(?:[A-Za-z](?:\s*\d(?:[A-Za-z]\d?)?)?)?$/;
// A registration number (letters, digits and dashes with at least one digit) opens the entry.
const REGISTRATION_ID = /^(?=.*\d)[A-Za-z0-9-]{1,32}$/;

function apiQuery(token) {
  const p = new URLSearchParams();
  if (criteria.q) p.set('name', criteria.q);
  if (criteria.q) p.set('fuzzy', 'true');
  if (criteria.where) {
    if (POSTAL_PREFIX.test(criteria.where)) p.set('postal_code_prefix', criteria.where);
    else p.set('city', criteria.where);
  }
  if (criteria.speaks) p.set('language', criteria.speaks);
  if (criteria.dn) p.set('activity', ACTIVITY);
  if (criteria.near) {
    p.set('near', `${criteria.near.lat},${criteria.near.lng}`);
    p.set('radius_km', criteria.radius);
  }
  p.set('page_size', String(PAGE_SIZE));
  if (token) p.set('page_token', token);
  return `/v1/practitioners?${p}`;
}

function setStatus(text) {
  // Re-set even when unchanged so that the live region announces the new search's count.
  const s = $('status');
  if (s.textContent === text) s.textContent = '';
  s.textContent = text;
}

function showMessage(kind, lines, retry) {
  const box = $('message');
  box.replaceChildren();
  if (!lines) return;
  const div = el('div', { class: `message ${kind}` }, lines.map((l) => el('p', { text: l })));
  if (retry) div.append(el('button', { type: 'button', class: 'secondary', text: t('retry'), onclick: retry }));
  box.append(div);
}

async function runSearch({ focusResults } = {}) {
  const serial = ++searchSerial;
  searchShown = true;
  const list = $('result-list');
  const results = $('results');
  const pageIndex = pageTokens.length - 1;
  results.setAttribute('aria-busy', 'true');
  showMessage('loading', [t('loading')]);
  setStatus(t('loading'));
  $('pager').hidden = true;
  let found, verdicts;
  try {
    found = await api(apiQuery(pageTokens[pageIndex]));
    const people = found.practitioners || [];
    verdicts = await verifyMany(people.map((p) => p.registrationId));
  } catch (e) {
    if (serial !== searchSerial) return;
    if (e instanceof ApiError && e.httpStatus === 400 && pageIndex > 0) {
      // A page token can expire after many register changes: start again from the first page.
      pageTokens = [''];
      history.replaceState({ view: 'search', tokens: pageTokens }, '', location.pathname + location.search);
      runSearch({ focusResults });
      return;
    }
    results.setAttribute('aria-busy', 'false');
    list.replaceChildren();
    setStatus(errorText(e));
    showMessage('error', [errorText(e)], () => runSearch({ focusResults: true }));
    return;
  }
  if (serial !== searchSerial) return;
  const people = found.practitioners || [];
  const total = Number(found.totalSize || 0);
  const distances = found.distancesKm || [];
  list.replaceChildren(...people.map((p, i) => resultCard(p, verdicts[i], distances[i])));
  if (people.length === 0) {
    await showNoMatch(serial);
    if (serial !== searchSerial) return;
  } else {
    showMessage(null, null);
    const from = pageIndex * PAGE_SIZE + 1;
    const to = pageIndex * PAGE_SIZE + people.length;
    const range = total > people.length ? ` ${t('range', { from, to, n: formatNumber(total) })}` : '';
    setStatus(`${t('count', { n: total })}${range}`);
  }
  const pages = Math.max(1, Math.ceil(total / PAGE_SIZE));
  $('pager').hidden = !(pageIndex > 0 || found.nextPageToken);
  $('prev').disabled = pageIndex === 0;
  $('next').disabled = !found.nextPageToken;
  $('next').dataset.token = found.nextPageToken || '';
  $('page-info').textContent = t('pageOf', { page: pageIndex + 1, pages });
  results.setAttribute('aria-busy', 'false');
  if (focusResults) {
    const link = lastOpenedId &&
      list.querySelector(`.card[data-id="${CSS.escape(lastOpenedId)}"] .card-name a`);
    (link || $('results-heading')).focus();
  }
  lastOpenedId = null;
}

// Nothing matched: say whether the name is unknown or only the filters left no one, and when
// the dry-needling filter hid people, offer to show them.
async function showNoMatch(serial) {
  let hidden = 0;
  if (criteria.dn) {
    const dn = criteria.dn;
    criteria.dn = false;
    const query = apiQuery('');
    criteria.dn = dn;
    try {
      hidden = Number((await api(query.replace(/page_size=\d+/, 'page_size=1'))).totalSize || 0);
    } catch { /* the plain message will do */ }
    if (serial !== searchSerial) return;
  }
  const byName = criteria.q && !criteria.where && !criteria.speaks && !criteria.near;
  let first;
  if (hidden > 0) first = t('noneAuthorized', { n: hidden });
  else first = byName ? t('noneByName', { name: criteria.q }) : t('noneFilters');
  showMessage('empty', [first, hidden > 0 ? null : t('noneTry')].filter(Boolean));
  if (hidden > 0) {
    $('message').firstChild.append(el('button', {
      type: 'button', class: 'secondary', text: t('showAll', { n: hidden }),
      onclick: () => { $('dn').checked = false; submitSearch(); $('results-heading').focus(); },
    }));
  }
  setStatus(first);
}

function resultCard(p, v, distanceKm) {
  const name = displayName(p);
  const permit = p.permit || {};
  const href = `/?id=${encodeURIComponent(p.registrationId)}`;
  const conditions = p.conditions || [];
  const locations = p.locations || [];
  const languages = p.languages || [];
  return el('li', { class: 'card', 'data-id': p.registrationId },
    el('h3', { class: 'card-name' },
      el('a', { href, class: 'entry-link', onclick: (e) => openEntryFromLink(e, p.registrationId) }, name)),
    el('p', { class: 'meta' },
      el('span', {}, `${t('regNo')} `, el('strong', { text: p.registrationId })),
      el('span', { text: t('permitLine', { register: enumText('registers', permit.register), status: enumText('permitStatus', permit.status) }) }),
      distanceKm !== undefined ? el('span', { class: 'distance', text: t('distance', { km: formatNumber(distanceKm, 1) }) }) : null),
    v ? verdictBlock(v) : null,
    conditions.length ? el('div', { class: 'conditions' },
      el('p', { class: 'label', text: t('permitConditions') }),
      el('ul', {}, conditions.map((c) => el('li', { text: c })))) : null,
    locations.length ? el('div', {},
      el('p', { class: 'label', text: t('locationsLabel') }),
      el('ul', { class: 'locations' }, locations.map(locationItem))) : null,
    languages.length ? el('p', {}, el('span', { class: 'label', text: `${t('languagesLabel')}${t('colon')}` }),
      languages.map(languageName).join(t('listSep'))) : null,
    el('p', { class: 'more' }, el('a', { href, onclick: (e) => openEntryFromLink(e, p.registrationId), 'aria-label': t('viewEntry', { name }) }, t('viewEntryShort'))));
}

function locationItem(l) {
  const address = [l.streetAddress, [l.city, l.province].filter(Boolean).join(' '), l.postalCode]
    .filter(Boolean).join(', ');
  return el('li', {},
    l.clinicName ? el('strong', { text: l.clinicName }) : null,
    address ? el('span', { class: 'address', text: address }) : null,
    l.phone ? el('span', {}, `${t('phone')}${t('colon')}`,
      el('a', { href: `tel:${l.phone.replace(/[^0-9+]/g, '')}`, class: 'tel', text: l.phone })) : null);
}

// ---------------------------------------------------------------------------------------------
// The entry (detail) view: /?id=PT-… shows the live verdict, every authorization with its
// training and timeline, and the register's change history.

let detailSerial = 0;

function openEntryFromLink(e, id) {
  if (e.ctrlKey || e.metaKey || e.shiftKey || e.button === 1) return; // new tab: let it go
  e.preventDefault();
  const from = location.pathname + location.search;
  lastOpenedId = id;
  const p = new URLSearchParams();
  p.set('id', id);
  const keepLang = new URLSearchParams(location.search).get('lang');
  if (keepLang) p.set('lang', keepLang);
  history.pushState({ view: 'entry', from }, '', `/?${p}`);
  render({ focus: true });
}

async function showEntry(id, { focus } = {}) {
  const serial = ++detailSerial;
  const body = $('detail-body');
  const back = $('back-link');
  const from = history.state && history.state.from;
  back.textContent = from ? t('backResults') : t('back');
  back.href = from || '/';
  body.setAttribute('aria-busy', 'true');
  body.replaceChildren(el('p', { class: 'message loading', role: 'status', text: t('loadingEntry') }));
  let v, p;
  try {
    [v] = await verifyMany([id]);
    if (v && v.reason !== 'NOT_REGISTERED') {
      p = await api(`/v1/practitioners/${encodeURIComponent(id)}`);
    }
  } catch (e) {
    if (serial !== detailSerial) return;
    body.setAttribute('aria-busy', 'false');
    body.replaceChildren(el('h2', { id: 'detail-heading', tabindex: '-1', text: id }),
      el('div', { class: 'message error', role: 'alert' }, el('p', { text: errorText(e) }),
        el('button', { type: 'button', class: 'secondary', text: t('retry'), onclick: () => showEntry(id, { focus: true }) })));
    if (focus) $('detail-heading').focus();
    return;
  }
  if (serial !== detailSerial) return;
  body.setAttribute('aria-busy', 'false');
  if (!p) {
    body.replaceChildren(
      el('h2', { id: 'detail-heading', tabindex: '-1', text: t('notRegisteredTitle', { id }) }),
      el('div', { class: 'message empty' }, el('p', { text: t('notRegisteredBody') })));
    document.title = t('title');
    if (focus) $('detail-heading').focus();
    return;
  }
  const name = displayName(p);
  document.title = t('entryTitle', { name });
  const permit = p.permit || {};
  const auths = p.authorizations || [];
  const shareUrl = `${location.origin}/?id=${encodeURIComponent(p.registrationId)}`;
  const copyStatus = el('span', { class: 'copy-status', role: 'status' });
  body.replaceChildren(
    el('h2', { id: 'detail-heading', tabindex: '-1', text: name }),
    el('p', { class: 'meta' }, el('span', {}, `${t('regNo')} `, el('strong', { text: p.registrationId })),
      (p.formerNames || []).length ? el('span', { text: `${t('alsoKnownAs')}${t('colon')}${p.formerNames.join(t('listSep'))}` }) : null),
    verdictBlock(v, 'p'),
    el('section', { class: 'panel', 'aria-labelledby': 'permit-h' },
      el('h3', { id: 'permit-h', text: t('permitLabel') }),
      el('dl', { class: 'facts' },
        fact(t('registerLabel'), enumText('registers', permit.register)),
        fact(t('statusLabel'), enumText('permitStatus', permit.status)),
        fact(t('registeredOn'), formatDate(permit.registeredOn)),
        fact(t('expiresOn'), permit.expiresOn ? formatDate(permit.expiresOn) : t('noExpiry'))),
      (p.conditions || []).length ? el('div', {}, el('p', { class: 'label', text: t('permitConditions') }),
        el('ul', {}, p.conditions.map((c) => el('li', { text: c })))) : null,
      timeline(permit.statusHistory, 'permitStatus')),
    el('section', { class: 'panel', 'aria-labelledby': 'auth-h' },
      el('h3', { id: 'auth-h', text: t('authorizationsHeading') }),
      auths.length ? auths.map(authorizationBlock) : el('p', { text: t('noAuthorizations') })),
    (p.locations || []).length ? el('section', { class: 'panel', 'aria-labelledby': 'loc-h' },
      el('h3', { id: 'loc-h', text: t('locationsLabel') }),
      el('ul', { class: 'locations' }, p.locations.map(locationItem))) : null,
    (p.languages || []).length ? el('section', { class: 'panel', 'aria-labelledby': 'lang-h' },
      el('h3', { id: 'lang-h', text: t('languagesLabel') }),
      el('p', { text: p.languages.map(languageName).join(t('listSep')) })) : null,
    el('section', { class: 'panel', 'aria-labelledby': 'hist-h' },
      el('h3', { id: 'hist-h', text: t('historyHeading') }),
      p.updateTime ? el('p', { text: t('lastChange', { date: formatTimestampDate(p.updateTime) }) }) : null,
      el('ol', { id: 'history-list', class: 'history' }),
      el('div', { id: 'history-more' })),
    el('section', { class: 'panel share', 'aria-labelledby': 'share-h' },
      el('h3', { id: 'share-h', text: t('shareHeading') }),
      el('p', { class: 'hint', id: 'share-hint', text: t('shareHint') }),
      el('label', { for: 'share-url', text: t('shareLabel') }),
      el('div', { class: 'share-row' },
        el('input', { id: 'share-url', type: 'text', readonly: true, value: shareUrl, 'aria-describedby': 'share-hint' }),
        el('button', { type: 'button', class: 'secondary', text: t('copy'), onclick: () => copyLink(shareUrl, copyStatus) })),
      copyStatus,
      qrFigure(shareUrl)));
  if (focus) $('detail-heading').focus();
  loadHistory(p.registrationId, '', serial);
}

// The link as a QR code, for a clinic's appointment sheet or a printed entry.
function qrFigure(url) {
  const svg = qrSvg(url, t('qrLabel'));
  if (!svg) return null;
  return el('figure', { class: 'qr-figure' }, svg, el('figcaption', { class: 'hint', text: t('qrCaption') }));
}

function fact(term, value) {
  const v = value ? value.charAt(0).toLocaleUpperCase(LOCALES[lang]) + value.slice(1) : '—';
  return el('div', {}, el('dt', { text: term }), el('dd', { text: v }));
}

function timeline(history, table) {
  if (!history || history.length === 0) return null;
  return el('div', { class: 'timeline' },
    el('p', { class: 'label', text: t('timelineLabel') }),
    el('ol', {}, history.map((h) => el('li', {},
      t('timelineItem', { date: formatDate(h.effectiveOn), status: enumText(table, h.status) }),
      h.reason ? el('span', { class: 'reason', text: ` — ${h.reason}` }) : null))));
}

function authorizationBlock(a) {
  const techniques = (a.techniques || []).map((x) => enumText('techniques', x)).join(t('listSep'));
  const training = a.training || [];
  return el('div', { class: 'authorization' },
    el('h4', { text: enumText('activities', a.activity) }),
    el('dl', { class: 'facts' },
      fact(t('statusLabel'), enumText('authStatus', a.status)),
      techniques ? fact(t('techniquesLabel'), techniques) : null,
      fact(t('grantedOn'), formatDate(a.grantedOn)),
      fact(t('expiresOn'), a.expiresOn ? formatDate(a.expiresOn) : t('noExpiry'))),
    (a.conditions || []).length ? el('div', {}, el('p', { class: 'label', text: t('conditionsLabel') }),
      el('ul', {}, a.conditions.map((c) => el('li', { text: c })))) : null,
    training.length ? el('div', {}, el('p', { class: 'label', text: t('trainingLabel') }),
      el('ul', { class: 'training' }, training.map((r) => el('li', {
        text: t('trainingItem', {
          course: r.course || '', provider: r.provider || '',
          hours: formatNumber(r.hours || 0, Number.isInteger(r.hours || 0) ? 0 : 1), date: formatDate(r.completedOn),
        }),
      })))) : null,
    timeline(a.statusHistory, 'authStatus'));
}

async function loadHistory(id, token, serial) {
  const list = $('history-list');
  const more = $('history-more');
  if (!list) return;
  let r;
  try {
    const q = new URLSearchParams({ page_size: String(HISTORY_PAGE_SIZE) });
    if (token) q.set('page_token', token);
    r = await api(`/v1/practitioners/${encodeURIComponent(id)}/history?${q}`);
  } catch (e) {
    if (serial !== detailSerial) return;
    more.replaceChildren(el('p', { class: 'message error', text: errorText(e) }));
    return;
  }
  if (serial !== detailSerial) return;
  const events = r.events || [];
  if (!token && events.length === 0) list.replaceWith(el('p', { text: t('historyNone') }));
  for (const ev of events) {
    list.append(el('li', {},
      t('historyItem', { date: formatTimestampDate(ev.changeTime), kind: enumText('eventKinds', ev.kind) }),
      eventSummary(ev),
      el('span', { class: 'reason', text: ` (${t('revisionLabel', { rev: ev.revision || '0' })})` })));
  }
  more.replaceChildren();
  if (r.nextPageToken) {
    more.append(el('button', {
      type: 'button', class: 'secondary', text: t('historyMore'),
      onclick: () => loadHistory(id, r.nextPageToken, serial),
    }));
  }
}

// What the entry said after a change: its permit status and, when it has one, the dry needling
// authorization's status.
function eventSummary(ev) {
  const p = ev.practitioner;
  if (!p) return null;
  const parts = [];
  if (p.permit && p.permit.status) parts.push(t('eventPermit', { status: enumText('permitStatus', p.permit.status) }));
  const dn = (p.authorizations || []).find((a) => a.activity === ACTIVITY);
  if (dn && dn.status) parts.push(t('eventDn', { status: enumText('authStatus', dn.status) }));
  return parts.length ? ` — ${parts.join('; ')}` : null;
}

async function copyLink(url, statusEl) {
  try {
    await navigator.clipboard.writeText(url);
    statusEl.textContent = t('copied');
  } catch {
    const input = $('share-url');
    input.focus();
    input.select();
    statusEl.textContent = t('copyFailed');
  }
}

// ---------------------------------------------------------------------------------------------
// Near me: the position is asked for only when the patient presses the button.

function useLocation() {
  const status = $('near-status');
  if (!('geolocation' in navigator)) {
    status.textContent = t('nearUnsupported');
    return;
  }
  status.textContent = t('nearLocating');
  navigator.geolocation.getCurrentPosition((pos) => {
    criteria.near = {
      lat: Math.round(pos.coords.latitude * 1e4) / 1e4,
      lng: Math.round(pos.coords.longitude * 1e4) / 1e4,
    };
    status.textContent = t('nearOn');
    $('near-clear').hidden = false;
    submitSearch();
  }, (err) => {
    criteria.near = null;
    status.textContent = err && err.code === 1 ? t('nearDenied') : t('nearUnavailable');
  }, { maximumAge: 600000, timeout: 20000 });
}

function clearLocation() {
  criteria.near = null;
  $('near-clear').hidden = true;
  $('near-status').textContent = t('nearHint');
  $('near-button').focus();
  if (lastRendered === 'search' && hasCriteria()) submitSearch();
}

// ---------------------------------------------------------------------------------------------
// Views and navigation.

let lastRendered = null;

function submitSearch() {
  criteriaFromForm();
  const id = criteria.q.replace(/\s+/g, '');
  if (REGISTRATION_ID.test(id) && !/^[A-Za-z]\d[A-Za-z]$/.test(id)) {
    const p = new URLSearchParams({ id: id.toUpperCase() });
    const keepLang = new URLSearchParams(location.search).get('lang');
    if (keepLang) p.set('lang', keepLang);
    history.pushState({ view: 'entry', from: location.pathname + location.search }, '', `/?${p}`);
    render({ focus: true });
    return;
  }
  pageTokens = [''];
  const url = searchUrl();
  const state = { view: 'search', tokens: pageTokens };
  if (url === location.pathname + location.search) history.replaceState(state, '', url);
  else history.pushState(state, '', url);
  showSearchView();
  if (!hasCriteria()) {
    $('result-list').replaceChildren();
    $('pager').hidden = true;
    showMessage('empty', [t('needCriteria')]);
    setStatus(t('needCriteria'));
    return;
  }
  runSearch({ focusResults: false });
}

function changePage(delta) {
  if (delta > 0) {
    const token = $('next').dataset.token;
    if (!token) return;
    pageTokens = [...pageTokens, token];
  } else if (pageTokens.length > 1) {
    pageTokens = pageTokens.slice(0, -1);
  } else {
    return;
  }
  history.replaceState({ view: 'search', tokens: pageTokens }, '', location.pathname + location.search);
  runSearch({ focusResults: true });
}

function showSearchView() {
  $('search-view').hidden = false;
  $('detail-view').hidden = true;
  document.title = t('title');
  lastRendered = 'search';
}

function render({ focus } = {}) {
  const params = new URLSearchParams(location.search);
  const id = params.get('id');
  if (id) {
    $('search-view').hidden = true;
    $('detail-view').hidden = false;
    lastRendered = 'entry';
    showEntry(id.trim().toUpperCase(), { focus });
    return;
  }
  showSearchView();
  criteriaFromUrl();
  criteriaToForm();
  const state = history.state;
  pageTokens = state && Array.isArray(state.tokens) && state.tokens.length ? state.tokens : [''];
  const anything = ['q', 'where', 'speaks', 'dn'].some((k) => params.has(k));
  if (anything && hasCriteria()) {
    runSearch({ focusResults: focus });
  } else {
    $('result-list').replaceChildren();
    $('pager').hidden = true;
    searchShown = false;
    showMessage('start', [t('start')]);
    setStatus('');
    if (focus) $('q').focus();
  }
}

function switchLanguage() {
  lang = lang === 'en' ? 'fr' : 'en';
  try { localStorage.setItem('physioreg.lang', lang); } catch { /* storage may be disabled */ }
  const url = new URL(location.href);
  url.searchParams.set('lang', lang);
  history.replaceState(history.state, '', url.pathname + url.search);
  applyStaticStrings();
  if (criteria.near) $('near-status').textContent = t('nearOn');
  render({});
  $('lang-switch').focus();
}

function start() {
  applyStaticStrings();
  $('search-form').addEventListener('submit', (e) => {
    e.preventDefault();
    submitSearch();
  });
  // With results on screen, the dry-needling box applies at once.
  $('dn').addEventListener('change', () => {
    if (lastRendered === 'search' && searchShown) submitSearch();
  });
  $('prev').addEventListener('click', () => changePage(-1));
  $('next').addEventListener('click', () => changePage(+1));
  $('near-button').addEventListener('click', useLocation);
  $('near-clear').addEventListener('click', clearLocation);
  $('radius').addEventListener('change', () => {
    if (criteria.near && lastRendered === 'search' && searchShown) submitSearch();
  });
  $('lang-switch').addEventListener('click', switchLanguage);
  $('back-link').addEventListener('click', (e) => {
    if (history.state && history.state.from && !(e.ctrlKey || e.metaKey || e.shiftKey)) {
      e.preventDefault();
      history.back();
    }
  });
  window.addEventListener('popstate', () => render({ focus: true }));
  render({});
}

start();
