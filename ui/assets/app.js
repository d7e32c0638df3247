// berth web UI: a small single-page app over the UI API (/ui/api/v1/) and the registry API (/v2/).
// No framework and no build step. Every piece of data reaches the page through text nodes and
// attributes set one by one (never innerHTML), so a repository or tag name cannot inject markup.

const API = '/ui/api/v1';
const CREDS = 'berth.credentials';
const main = document.getElementById('main');
const who = document.getElementById('who');
const state = { session: null, renderId: 0, routed: false, routedTo: '' };

// ---- DOM helpers ----------------------------------------------------------------------------

// h('a', {href: '/x', class: 'y', onclick: fn}, 'text', child...): an element; strings are text
function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined || v === false) continue;
    if (k.startsWith('on')) el.addEventListener(k.slice(2), v);
    else if (k === 'class') el.className = v;
    else if (k === 'dataset') Object.assign(el.dataset, v);
    else el.setAttribute(k, v === true ? '' : String(v));
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const c of [children].flat(Infinity)) {
    if (c === null || c === undefined || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}

function show(...children) {
  main.replaceChildren();
  append(main, children);
}

let toastTimer = 0;
function toast(text) {
  const t = document.getElementById('status');
  t.textContent = text;
  t.classList.add('show');
  clearTimeout(toastTimer);
  toastTimer = setTimeout(() => t.classList.remove('show'), 2500);
}

// ---- formatting -------------------------------------------------------------------------------

function size(n) {
  if (n === null || n === undefined) return '–';
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB', 'PiB'];
  let i = 0;
  let v = Number(n);
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  return (i === 0 ? String(v) : v.toFixed(v < 10 ? 1 : 0)) + ' ' + units[i];
}

const rtf = new Intl.RelativeTimeFormat('en', { numeric: 'auto' });
function relative(ms) {
  const s = (ms - Date.now()) / 1000;
  const steps = [[60, 'second'], [3600, 'minute'], [86400, 'hour'], [2592000, 'day'],
    [31536000, 'month'], [Infinity, 'year']];
  const div = { second: 1, minute: 60, hour: 3600, day: 86400, month: 2592000, year: 31536000 };
  for (const [limit, unit] of steps) {
    if (Math.abs(s) < limit) return rtf.format(Math.round(s / div[unit]), unit);
  }
  return '';
}

function absolute(ms) {
  return new Date(ms).toISOString().replace('T', ' ').slice(0, 19) + ' UTC';
}

// a <time> with the relative age and, below it, the absolute UTC time
function when(iso) {
  if (!iso) return h('span', { class: 'muted' }, '–');
  const ms = Date.parse(iso);
  if (Number.isNaN(ms)) return h('span', {}, iso);
  return h('time', { datetime: iso, title: absolute(ms) }, relative(ms), h('small', {}, absolute(ms)));
}

function shortDigest(d) {
  if (!d) return '';
  const i = d.indexOf(':');
  return i < 0 ? d.slice(0, 12) : d.slice(0, i + 1) + d.slice(i + 1, i + 13);
}

function platform(p) {
  if (!p) return 'unknown';
  return [p.os || '?', p.architecture || '?', p.variant].filter(Boolean).join('/');
}

// ---- URLs -------------------------------------------------------------------------------------

const refPath = (name, ref) =>
  '/ui/r/' + name + (ref ? (ref.includes(':') ? '@' + ref : ':' + ref) : '');

function parseRoute(pathname) {
  let p = pathname.replace(/^\/ui/, '') || '/';
  if (p === '/' || p === '') return { page: 'repos' };
  if (p === '/storage' || p === '/storage/') return { page: 'storage' };
  if (p.startsWith('/r/')) {
    let rest;
    try {
      rest = decodeURIComponent(p.slice(3));
    } catch {
      return { page: 'notfound' };
    }
    rest = rest.replace(/\/+$/, '');
    const at = rest.indexOf('@');
    if (at > 0) return { page: 'image', name: rest.slice(0, at), ref: rest.slice(at + 1) };
    const colon = rest.indexOf(':', rest.lastIndexOf('/') + 1);
    if (colon > 0) return { page: 'image', name: rest.slice(0, colon), ref: rest.slice(colon + 1) };
    if (rest) return { page: 'repo', name: rest };
  }
  return { page: 'notfound' };
}

function navigate(url, opts = {}) {
  if (opts.replace) history.replaceState(opts.state || null, '', url);
  else history.pushState(opts.state || null, '', url);
  route(opts.keepFocus);
}

// same-origin links under /ui/ (not the API) change the page without a reload
document.addEventListener('click', (ev) => {
  if (ev.defaultPrevented || ev.button !== 0 || ev.metaKey || ev.ctrlKey || ev.shiftKey || ev.altKey) return;
  const a = ev.target.closest('a[href]');
  if (!a || a.target || a.hasAttribute('download')) return;
  const url = new URL(a.href, location.href);
  if (url.origin !== location.origin || !url.pathname.startsWith('/ui/') ||
      url.pathname.startsWith('/ui/api/') || url.pathname.startsWith('/ui/assets/')) return;
  if (url.hash && url.pathname === location.pathname && url.search === location.search) return; // in-page
  ev.preventDefault();
  navigate(url.pathname + url.search);
});
// (an in-page link changes only the hash and fires popstate too: that is no new page)
window.addEventListener('popstate', () => {
  if (location.pathname + location.search !== state.routedTo) route();
});

// ---- API --------------------------------------------------------------------------------------

class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

function authHeaders() {
  const c = sessionStorage.getItem(CREDS);
  return c ? { Authorization: 'Basic ' + c } : {};
}

async function errorOf(res) {
  let code = 'HTTP_' + res.status;
  let message = res.statusText || 'request failed';
  try {
    const j = await res.json();
    const e = j.errors && j.errors[0];
    if (e) {
      code = e.code || code;
      message = e.message || message;
    }
  } catch { /* not JSON */ }
  return new ApiError(res.status, code, message);
}

async function api(path, headers) {
  let res;
  try {
    res = await fetch(API + path, { headers: { Accept: 'application/json', ...(headers || authHeaders()) } });
  } catch (e) {
    throw new ApiError(0, 'NETWORK', 'the registry did not answer (' + e.message + ')');
  }
  if (!res.ok) throw await errorOf(res);
  return res.json();
}

async function loadSession() {
  state.session = await api('/session');
  renderWho();
  return state.session;
}

// ---- header: who is signed in -------------------------------------------------------------------

function renderWho() {
  const s = state.session;
  who.replaceChildren();
  if (!s) return;
  if (s.user) {
    append(who, [h('span', { class: 'user' }, 'Signed in as ', h('strong', {}, s.user)),
      h('button', { type: 'button', class: 'small', onclick: logout }, 'Log out')]);
  } else if (s.auth !== 'none') {
    append(who, h('button', { type: 'button', class: 'small', onclick: () => showLogin('') }, 'Log in'));
  }
  if (s.read_only) append(who, h('span', { class: 'plat' }, 'read-only'));
}

async function logout() {
  sessionStorage.removeItem(CREDS);
  await loadSession().catch(() => {});
  toast('Logged out');
  route();
}

// ---- login ------------------------------------------------------------------------------------

function b64(text) {
  const bytes = new TextEncoder().encode(text);
  let bin = '';
  for (const b of bytes) bin += String.fromCharCode(b);
  return btoa(bin);
}

function showLogin(reason) {
  document.title = 'Log in · berth';
  const err = h('p', { class: 'error', role: 'alert' }, reason || '');
  const user = h('input', { type: 'text', name: 'username', id: 'login-user', autocomplete: 'username', required: true });
  const pass = h('input', { type: 'password', name: 'password', id: 'login-pass', autocomplete: 'current-password', required: true });
  const form = h('form', { class: 'login', onsubmit: async (ev) => {
    ev.preventDefault();
    const creds = b64(user.value + ':' + pass.value);
    try {
      const s = await api('/session', { Accept: 'application/json', Authorization: 'Basic ' + creds });
      if (!s.user) {
        err.textContent = 'Wrong user name or password.';
        pass.select();
        return;
      }
      sessionStorage.setItem(CREDS, creds);
      state.session = s;
      renderWho();
      toast('Signed in as ' + s.user);
      route();
    } catch (e) {
      err.textContent = e.status === 401 ? 'Wrong user name or password.' : e.message;
    }
  } },
  h('h1', {}, 'Log in to ' + ((state.session && state.session.host) || 'the registry')),
  err,
  h('label', { for: 'login-user' }, 'User name', user),
  h('label', { for: 'login-pass' }, 'Password', pass),
  h('button', { type: 'submit', class: 'primary' }, 'Log in'),
  h('p', { class: 'muted' }, 'The credentials stay in this browser tab (session storage) and go with every request.'));
  show(form);
  user.focus();
}

// ---- clipboard ----------------------------------------------------------------------------------

async function copy(text, button) {
  let done = false;
  try {
    if (navigator.clipboard && window.isSecureContext) {
      await navigator.clipboard.writeText(text);
      done = true;
    }
  } catch { /* fall back below */ }
  if (!done) {
    const ta = h('textarea', { readonly: true, class: 'offscreen', 'aria-hidden': 'true' });
    ta.value = text;
    document.body.append(ta);
    ta.select();
    try {
      done = document.execCommand('copy');
    } catch { done = false; }
    ta.remove();
  }
  toast(done ? 'Copied: ' + text : 'Copy failed; select the text instead');
  if (button && done) {
    const old = button.textContent;
    button.textContent = 'Copied';
    setTimeout(() => { button.textContent = old; }, 1500);
  }
}

function copyButton(text, label, aria) {
  const b = h('button', { type: 'button', class: 'small copy', 'aria-label': aria || 'Copy ' + text,
    title: text, dataset: { copy: text } }, label || 'Copy');
  b.addEventListener('click', () => copy(text, b));
  return b;
}

function pullCommands(name, ref) {
  const host = (state.session && state.session.host) || location.host;
  const target = host + '/' + name + (ref.includes(':') ? '@' + ref : ':' + ref);
  return ['podman', 'docker'].map((tool) => `${tool} pull ${target}`);
}

// ---- dialogs ------------------------------------------------------------------------------------

// confirmDelete: a modal dialog (Esc or Cancel closes it) offering the given choices; each
// choice {label, ref} deletes /v2/NAME/manifests/REF; resolves true when something was deleted
function confirmDelete(name, title, text, choices) {
  return new Promise((resolve) => {
    const err = h('p', { class: 'error', role: 'alert' });
    const cancel = h('button', { type: 'button', value: 'cancel', autofocus: true }, 'Cancel');
    const dlg = h('dialog', { 'aria-labelledby': 'dlg-title', class: 'confirm' },
      h('h2', { id: 'dlg-title' }, title), h('p', {}, text), err,
      h('div', { class: 'buttons' }, cancel, choices.map((c) => {
        const b = h('button', { type: 'button', class: 'danger primary', dataset: { ref: c.ref } }, c.label);
        b.addEventListener('click', async () => {
          b.disabled = true;
          try {
            const res = await fetch('/v2/' + name + '/manifests/' + c.ref,
              { method: 'DELETE', headers: authHeaders() });
            if (!res.ok) throw await errorOf(res);
            deleted = true;
            dlg.close();
            toast('Deleted ' + name + (c.ref.includes(':') ? '@' + shortDigest(c.ref) : ':' + c.ref));
          } catch (e) {
            err.textContent = `Not deleted: ${e.status ? e.status + ' ' : ''}${e.code}: ${e.message}`;
            b.disabled = false;
          }
        });
        return b;
      })));
    let deleted = false;
    cancel.addEventListener('click', () => dlg.close());
    dlg.addEventListener('close', () => {
      dlg.remove();
      resolve(deleted);
    });
    document.body.append(dlg);
    dlg.showModal();
    cancel.focus();
  });
}

// ---- pages ------------------------------------------------------------------------------------

function errorView(e, what) {
  if (e.status === 401) {
    showLogin(sessionStorage.getItem(CREDS) ? 'Your credentials were refused.' : 'This registry needs a login.');
    return;
  }
  document.title = 'Error · berth';
  show(h('h1', {}, what || 'Something went wrong'),
    h('p', { class: 'error', role: 'alert' }, e.status ? `${e.status} ${e.code}: ${e.message}` : e.message),
    h('p', {}, h('a', { href: '/ui/' }, 'Back to the repositories')));
}

function pager(stack, next, go) {
  if (!stack.length && !next && !currentCursor()) return null; // one page: nothing to page through
  return h('nav', { class: 'pager', 'aria-label': 'Pages' },
    // (a deep link with ?last= and no history of pages: Previous goes to the first page)
    h('button', { type: 'button', class: 'prev', disabled: stack.length === 0 && !currentCursor(),
      onclick: () => go(stack.slice(0, -1), stack[stack.length - 1]) }, '← Previous'),
    h('button', { type: 'button', class: 'next', disabled: !next,
      onclick: () => go([...stack, currentCursor()], next) }, 'Next →'));
}

function currentCursor() {
  return new URLSearchParams(location.search).get('last') || '';
}

function pageStack() {
  return (history.state && Array.isArray(history.state.stack)) ? history.state.stack : [];
}

async function repositoriesPage(id) {
  const params = new URLSearchParams(location.search);
  const q = params.get('q') || '';
  const last = params.get('last') || '';
  document.title = 'Repositories · berth';
  const search = h('input', { type: 'search', id: 'repo-search', name: 'q', value: q,
    placeholder: 'Filter repositories', 'aria-label': 'Filter repositories', autocomplete: 'off' });
  let timer = 0;
  search.addEventListener('input', () => {
    clearTimeout(timer);
    timer = setTimeout(() => {
      const v = search.value.trim();
      navigate('/ui/' + (v ? '?q=' + encodeURIComponent(v) : ''), { replace: true, keepFocus: true });
    }, 250);
  });
  search.addEventListener('keydown', (ev) => {
    if (ev.key === 'Enter') {
      clearTimeout(timer);
      const v = search.value.trim();
      navigate('/ui/' + (v ? '?q=' + encodeURIComponent(v) : ''), { replace: true, keepFocus: true });
    }
  });
  const results = h('div', { id: 'repo-results', 'aria-live': 'polite' }, h('p', { class: 'muted' }, 'Loading…'));
  const hadFocus = document.activeElement && document.activeElement.id === 'repo-search';
  show(h('h1', {}, 'Repositories'), h('div', { class: 'toolbar', role: 'search' }, search), results);
  if (hadFocus) {
    search.focus();
    search.setSelectionRange(search.value.length, search.value.length);
  }
  let data;
  try {
    data = await api(`/repositories?n=50${q ? '&q=' + encodeURIComponent(q) : ''}${last ? '&last=' + encodeURIComponent(last) : ''}`);
  } catch (e) {
    if (id === state.renderId) errorView(e, 'Cannot list the repositories');
    return;
  }
  if (id !== state.renderId) return;
  const repos = data.repositories || [];
  const stack = pageStack();
  const go = (st, cursor) => {
    const p = new URLSearchParams();
    if (q) p.set('q', q);
    if (cursor) p.set('last', cursor);
    const s = p.toString();
    navigate('/ui/' + (s ? '?' + s : ''), { state: { stack: st } });
  };
  const summary = h('p', { class: 'muted count' },
    data.total !== null && data.total !== undefined
      ? `${data.total} ${data.total === 1 ? 'repository' : 'repositories'}${q ? ' matching “' + q + '”' : ''}`
      : `${repos.length} ${repos.length === 1 ? 'repository' : 'repositories'} on this page${q ? ' matching “' + q + '”' : ''}`);
  if (!repos.length) {
    results.replaceChildren(summary, h('p', { class: 'empty' },
      q ? 'No repository matches “' + q + '”.' : 'No repositories yet: push an image to see it here.'));
    return;
  }
  const groups = [];
  for (const r of repos) {
    const ns = r.namespace !== undefined ? r.namespace : (r.name.includes('/') ? r.name.slice(0, r.name.lastIndexOf('/')) : '');
    if (!groups.length || groups[groups.length - 1].ns !== ns) groups.push({ ns, repos: [] });
    groups[groups.length - 1].repos.push(r);
  }
  results.replaceChildren();
  append(results, [summary, groups.map((g) => h('section', { class: 'group' },
    h('h2', { class: 'ns' }, g.ns ? h('code', {}, g.ns + '/') : 'top level'),
    h('table', { class: 'cards repos' },
      h('thead', {}, h('tr', {}, h('th', { scope: 'col' }, 'Name'), h('th', { scope: 'col', class: 'num' }, 'Tags'),
        h('th', { scope: 'col', class: 'num' }, 'Size'), h('th', { scope: 'col' }, 'Last push'))),
      h('tbody', {}, g.repos.map((r) => h('tr', { dataset: { name: r.name } },
        h('td', { 'data-label': 'Name' }, h('a', { href: refPath(r.name) }, r.name)),
        h('td', { 'data-label': 'Tags', class: 'num' }, String(r.tag_count ?? '–')),
        h('td', { 'data-label': 'Size', class: 'num', title: r.size != null ? r.size + ' bytes' : null }, size(r.size)),
        h('td', { 'data-label': 'Last push' }, when(r.last_push)))))))),
  pager(stack, data.next, go)]);
}

async function repositoryPage(id, name) {
  const params = new URLSearchParams(location.search);
  const sort = params.get('sort') === 'name' ? 'name' : 'pushed';
  const order = ['asc', 'desc'].includes(params.get('order')) ? params.get('order') : (sort === 'name' ? 'asc' : 'desc');
  const last = params.get('last') || '';
  document.title = name + ' · berth';
  show(h('nav', { class: 'crumbs', 'aria-label': 'Breadcrumb' }, h('a', { href: '/ui/' }, 'Repositories'), h('span', {}, name)),
    h('h1', {}, name), h('p', { class: 'muted' }, 'Loading…'));
  let data;
  try {
    data = await api(`/repositories/${name}/tags?n=100&sort=${sort}&order=${order}${last ? '&last=' + encodeURIComponent(last) : ''}`);
  } catch (e) {
    if (id === state.renderId) errorView(e, e.status === 404 ? 'No repository ' + name : 'Cannot list the tags of ' + name);
    return;
  }
  if (id !== state.renderId) return;
  const tags = data.tags || [];
  const stack = pageStack();
  const url = (s, o, cursor) => {
    const p = new URLSearchParams();
    if (s !== 'pushed') p.set('sort', s);
    if (o !== (s === 'name' ? 'asc' : 'desc')) p.set('order', o);
    if (cursor) p.set('last', cursor);
    const qs = p.toString();
    return refPath(name) + (qs ? '?' + qs : '');
  };
  const sortHeader = (key, label) => {
    const active = sort === key;
    const nextOrder = active ? (order === 'asc' ? 'desc' : 'asc') : (key === 'name' ? 'asc' : 'desc');
    return h('th', { scope: 'col', 'aria-sort': active ? (order === 'asc' ? 'ascending' : 'descending') : null },
      h('button', { type: 'button', class: 'sort', dataset: { sort: key },
        onclick: () => navigate(url(key, nextOrder, '')) },
      label, active ? (order === 'asc' ? ' ▲' : ' ▼') : ''));
  };
  const reload = () => route();
  const rows = tags.map((t) => h('tr', { dataset: { tag: t.name } },
    h('td', { 'data-label': 'Tag' }, h('a', { href: refPath(name, t.name), class: 'tagname' }, t.name),
      t.artifact_type ? h('span', { class: 'sub' }, t.artifact_type) : null),
    h('td', { 'data-label': 'Digest', class: 'digest' }, h('code', { title: t.digest }, shortDigest(t.digest)), ' ',
      copyButton(t.digest, 'Copy', 'Copy digest of ' + t.name)),
    h('td', { 'data-label': 'Size', class: 'num', title: t.size != null ? t.size + ' bytes' : null }, size(t.size)),
    h('td', { 'data-label': 'Pushed' }, when(t.pushed)),
    h('td', { 'data-label': 'Platforms' }, (t.platforms || []).length
      ? t.platforms.map((p) => h('span', { class: 'plat' }, platform(p))) : h('span', { class: 'muted' }, '–')),
    h('td', { 'data-label': 'Pull' }, h('div', { class: 'actions' }, pullCommands(name, t.name).map((cmd) =>
      copyButton(cmd, cmd.split(' ')[0], `Copy “${cmd}”`)))),
    data.can_delete ? h('td', { 'data-label': 'Delete' }, h('button', { type: 'button', class: 'small danger delete',
      'aria-label': 'Delete ' + t.name, onclick: async () => {
        const ok = await confirmDelete(name, 'Delete ' + name + ':' + t.name + '?',
          `Deleting the tag removes only the name ${t.name}. Deleting the manifest ${shortDigest(t.digest)} removes it with every tag that points at it.`,
          [{ label: 'Delete tag', ref: t.name }, { label: 'Delete manifest', ref: t.digest }]);
        if (ok) reload();
      } }, 'Delete')) : null));
  show(h('nav', { class: 'crumbs', 'aria-label': 'Breadcrumb' }, h('a', { href: '/ui/' }, 'Repositories'), h('span', {}, name)),
    h('h1', {}, name),
    tags.length ? h('table', { class: 'cards tags' },
      h('thead', {}, h('tr', {}, sortHeader('name', 'Tag'), h('th', { scope: 'col' }, 'Digest'),
        h('th', { scope: 'col', class: 'num' }, 'Size'), sortHeader('pushed', 'Pushed'), h('th', { scope: 'col' }, 'Platforms'),
        h('th', { scope: 'col' }, 'Pull'), data.can_delete ? h('th', { scope: 'col' }, h('span', { class: 'muted' }, 'Delete')) : null)),
      h('tbody', {}, rows))
      : h('p', { class: 'empty' }, 'This repository has no tags.'),
    pager(stack, data.next, (st, cursor) => navigate(url(sort, order, cursor), { state: { stack: st } })));
}

const REFERRER_KINDS = {
  'application/vnd.dev.cosign.artifact.sig.v1+json': 'Signatures (cosign)',
  'application/vnd.cncf.notary.signature': 'Signatures (Notation)',
  'application/spdx+json': 'SBOM (SPDX)',
  'text/spdx': 'SBOM (SPDX)',
  'application/vnd.cyclonedx+json': 'SBOM (CycloneDX)',
  'application/vnd.cyclonedx': 'SBOM (CycloneDX)',
  'application/vnd.in-toto+json': 'Attestations (in-toto)',
  'application/vnd.dev.sigstore.bundle.v0.3+json': 'Attestations (Sigstore bundle)',
};

// "Signatures (cosign) 1 · SBOM (SPDX) 1": chips that jump to the referrers further down
function referrerSummary(refs) {
  if (!refs.length) return null;
  const counts = new Map();
  for (const r of refs) {
    const t = r.artifact_type || r.media_type || 'unknown';
    counts.set(t, (counts.get(t) || 0) + 1);
  }
  return h('span', { class: 'ref-summary' }, [...counts].map(([t, n]) =>
    h('a', { class: 'plat', href: '#referrers' }, `${REFERRER_KINDS[t] || t}: ${n}`)));
}

function kv(pairs) {
  const items = pairs.filter(([, v]) => v !== null && v !== undefined && v !== '' &&
    !(Array.isArray(v) && !v.length));
  if (!items.length) return null;
  return h('dl', { class: 'kv' }, items.map(([k, v]) => [h('dt', {}, k), h('dd', {}, v instanceof Node ? v : String(v))]));
}

function codeList(list) {
  return h('ul', { class: 'plain' }, list.map((x) => h('li', {}, h('code', {}, x))));
}

function annotations(obj) {
  const entries = Object.entries(obj || {});
  if (!entries.length) return null;
  return kv(entries.map(([k, v]) => [k, h('code', {}, String(v))]));
}

function rawJson(label, doc) {
  return h('details', { class: 'raw' }, h('summary', {}, label), h('pre', {}, JSON.stringify(doc, null, 2)));
}

async function imagePage(id, name, ref) {
  const isDigest = ref.includes(':');
  const title = name + (isDigest ? '@' + shortDigest(ref) : ':' + ref);
  document.title = title + ' · berth';
  const crumbs = () => h('nav', { class: 'crumbs', 'aria-label': 'Breadcrumb' }, h('a', { href: '/ui/' }, 'Repositories'),
    h('a', { href: refPath(name) }, name), h('span', {}, isDigest ? shortDigest(ref) : ref));
  show(crumbs(), h('h1', {}, title), h('p', { class: 'muted' }, 'Loading…'));
  let m;
  try {
    m = await api(`/repositories/${name}/manifests/${ref}`);
  } catch (e) {
    if (id === state.renderId) errorView(e, e.status === 404 ? 'No manifest ' + name + (isDigest ? '@' : ':') + ref : 'Cannot load ' + title);
    return;
  }
  if (id !== state.renderId) return;
  const doc = m.manifest || {};
  const cfg = m.config || null;
  const cc = (cfg && cfg.config) || {};
  const isIndex = Array.isArray(doc.manifests) || /image\.index|manifest\.list/.test(m.media_type || '');
  const parts = [crumbs(), h('h1', {}, title)];

  parts.push(kv([
    ['Digest', h('span', { class: 'digest' }, h('code', { class: 'full-digest' }, m.digest), ' ', copyButton(m.digest, 'Copy', 'Copy digest'))],
    ['Kind', isIndex ? 'Image index (multi-platform)' : (m.artifact_type ? 'Artifact' : 'Image')],
    ['Media type', m.media_type],
    ['Artifact type', m.artifact_type],
    ['Size', m.total_size != null ? `${size(m.total_size)} (${m.total_size} bytes)` : size(m.size)],
    ['Platform', cfg && cfg.os ? platform(cfg) : null],
    ['Tags', (m.tags || []).length ? h('span', {}, m.tags.map((t) => h('a', { class: 'tag', href: refPath(name, t) }, t))) : null],
    ['Referrers', referrerSummary(m.referrers || [])],
    ['Subject', m.subject && m.subject.digest ? h('a', { href: refPath(name, m.subject.digest) }, shortDigest(m.subject.digest)) : null],
  ]));
  const pullRef = isDigest ? m.digest : ref;
  parts.push(h('div', { class: 'pulls' }, pullCommands(name, pullRef).map((cmd) =>
    h('div', { class: 'pull' }, h('code', {}, cmd), copyButton(cmd, 'Copy', `Copy “${cmd}”`)))));
  if (m.can_delete) {
    const choices = isDigest ? [{ label: 'Delete manifest', ref: m.digest }]
      : [{ label: 'Delete tag', ref }, { label: 'Delete manifest', ref: m.digest }];
    parts.push(h('p', {}, h('button', { type: 'button', class: 'danger delete', onclick: async () => {
      const ok = await confirmDelete(name, 'Delete ' + title + '?',
        `Deleting the manifest ${shortDigest(m.digest)} removes it with every tag that points at it` +
        (isDigest ? '.' : `; deleting the tag removes only the name ${ref}.`), choices);
      if (ok) navigate(refPath(name));
    } }, 'Delete…')));
  }

  if (isIndex) {
    const children = (m.children && m.children.length) ? m.children : (doc.manifests || []).map((c) => ({ digest: c.digest, media_type: c.mediaType, size: c.size, platform: c.platform }));
    parts.push(h('h2', {}, 'Platforms'), h('table', { class: 'cards children' },
      h('thead', {}, h('tr', {}, h('th', { scope: 'col' }, 'Platform'), h('th', { scope: 'col' }, 'Digest'),
        h('th', { scope: 'col' }, 'Media type'), h('th', { scope: 'col', class: 'num' }, 'Size'))),
      h('tbody', {}, children.map((c) => h('tr', { dataset: { digest: c.digest } },
        h('td', { 'data-label': 'Platform' }, h('a', { href: refPath(name, c.digest) }, platform(c.platform))),
        h('td', { 'data-label': 'Digest' }, h('code', { title: c.digest }, shortDigest(c.digest))),
        h('td', { 'data-label': 'Media type' }, h('code', {}, c.media_type || '')),
        h('td', { 'data-label': 'Size', class: 'num' }, size(c.size)))))));
  }

  if (cfg && Object.keys(cfg).length) { // (an artifact's empty config "{}" says nothing)
    parts.push(h('h2', {}, 'Configuration'), kv([
      ['Created', cfg.created ? when(cfg.created) : null],
      ['Author', cfg.author],
      ['Entrypoint', cc.Entrypoint ? h('code', {}, JSON.stringify(cc.Entrypoint)) : null],
      ['Cmd', cc.Cmd ? h('code', {}, JSON.stringify(cc.Cmd)) : null],
      ['Working dir', cc.WorkingDir ? h('code', {}, cc.WorkingDir) : null],
      ['User', cc.User ? h('code', {}, cc.User) : null],
      ['Exposed ports', cc.ExposedPorts ? codeList(Object.keys(cc.ExposedPorts)) : null],
      ['Env', cc.Env && cc.Env.length ? codeList(cc.Env) : null],
      ['Labels', cc.Labels && Object.keys(cc.Labels).length ? annotations(cc.Labels) : null],
      ['Volumes', cc.Volumes ? codeList(Object.keys(cc.Volumes)) : null],
      ['Stop signal', cc.StopSignal],
    ]) || h('p', { class: 'muted' }, 'The configuration sets nothing.'));
  } else if (m.config_too_large) {
    parts.push(h('h2', {}, 'Configuration'), h('p', { class: 'muted' }, 'The configuration is larger than 1 MiB and is not shown.'));
  }

  if (!isIndex && Array.isArray(m.layers)) {
    const total = m.layers.reduce((a, l) => a + (l.size || 0), 0);
    parts.push(h('h2', {}, `Layers (${m.layers.length}, ${size(total)})`), m.layers.length ? h('table', { class: 'cards layers' },
      h('thead', {}, h('tr', {}, h('th', { scope: 'col', class: 'num' }, '#'), h('th', { scope: 'col' }, 'Digest'),
        h('th', { scope: 'col' }, 'Media type'), h('th', { scope: 'col', class: 'num' }, 'Size'))),
      h('tbody', {}, m.layers.map((l, i) => h('tr', {},
        h('td', { 'data-label': '#', class: 'num' }, String(i + 1)),
        h('td', { 'data-label': 'Digest' }, h('code', { title: l.digest }, shortDigest(l.digest)),
          Object.keys(l.annotations || {}).length ? annotations(l.annotations) : null),
        h('td', { 'data-label': 'Media type' }, h('code', {}, l.media_type || '')),
        h('td', { 'data-label': 'Size', class: 'num', title: l.size + ' bytes' }, size(l.size))))))
      : h('p', { class: 'muted' }, 'No layers.'));
  }

  if (cfg && Array.isArray(cfg.history) && cfg.history.length) {
    parts.push(h('h2', {}, 'Build steps'), h('ol', { class: 'steps' }, cfg.history.map((s) =>
      h('li', { class: s.empty_layer ? 'empty' : null },
        h('code', {}, (s.created_by || s.comment || '(no command recorded)').replace(/^\/bin\/sh -c #\(nop\)\s*/, '')),
        h('span', { class: 'sub' }, [s.created ? absolute(Date.parse(s.created)) : null, s.empty_layer ? 'no layer' : null,
          s.comment && s.created_by ? s.comment : null].filter(Boolean).join(' · '))))));
  }

  if (doc.annotations && Object.keys(doc.annotations).length) {
    parts.push(h('h2', {}, 'Annotations'), annotations(doc.annotations));
  }

  const refs = m.referrers || [];
  parts.push(h('h2', { id: 'referrers' }, `Referrers (${refs.length})`));
  if (!refs.length) {
    parts.push(h('p', { class: 'muted empty' }, 'No signatures, SBOMs or attestations refer to this manifest.'));
  } else {
    const byType = new Map();
    for (const r of refs) {
      const t = r.artifact_type || r.media_type || 'unknown';
      if (!byType.has(t)) byType.set(t, []);
      byType.get(t).push(r);
    }
    for (const [t, list] of byType) {
      parts.push(h('section', { class: 'referrers', dataset: { artifactType: t } },
        h('h3', {}, REFERRER_KINDS[t] || t, REFERRER_KINDS[t] ? h('span', { class: 'sub' }, t) : null),
        h('ul', { class: 'plain' }, list.map((r) => h('li', { class: 'card' },
          h('a', { href: refPath(name, r.digest) }, h('code', {}, shortDigest(r.digest))), ' ',
          h('span', { class: 'muted' }, size(r.size)),
          annotations(r.annotations))))));
    }
  }

  parts.push(h('h2', {}, 'Raw documents'), rawJson('Manifest JSON', doc));
  if (cfg) parts.push(rawJson('Config JSON', cfg));
  show(parts);
}

async function storagePage(id) {
  document.title = 'Storage · berth';
  show(h('h1', {}, 'Storage'), h('p', { class: 'muted' }, 'Loading…'));
  let s;
  try {
    s = await api('/storage');
  } catch (e) {
    if (id === state.renderId) errorView(e, 'Cannot read the storage usage');
    return;
  }
  if (id !== state.renderId) return;
  const repos = [...(s.repositories || [])].sort((a, b) => (b.exclusive + b.shared) - (a.exclusive + a.shared) || (a.name < b.name ? -1 : 1));
  const sum = (k) => repos.reduce((a, r) => a + (r[k] || 0), 0);
  const parts = [h('h1', {}, 'Storage')];
  parts.push(h('h2', {}, 'Maintenance'));
  if (s.uploads || s.gc) {
    const gc = s.gc;
    parts.push(kv([
      ['Uploads in progress', s.uploads ? `${s.uploads.open} (${size(s.uploads.bytes)})` : null],
      ['Last GC', gc && gc.last_run ? when(gc.last_run) : 'never run'],
      ['GC freed', gc && gc.last_run ? `${size(gc.freed_bytes)}: ${gc.blobs_deleted} blobs, ${gc.manifests_deleted} manifests` : null],
    ]));
  } else {
    parts.push(h('p', { class: 'muted' }, 'Upload sessions and garbage collection are shown only to a user who may pull every repository.'));
  }
  parts.push(h('h2', {}, `Repositories (${repos.length})`),
    h('p', { class: 'muted' }, 'Exclusive: bytes only this repository references (freed if it is deleted). Shared: bytes it shares with others.'));
  if (repos.length) {
    parts.push(h('table', { class: 'cards storage' },
      h('thead', {}, h('tr', {}, h('th', { scope: 'col' }, 'Repository'), h('th', { scope: 'col', class: 'num' }, 'Exclusive'),
        h('th', { scope: 'col', class: 'num' }, 'Shared'))),
      h('tbody', {}, repos.map((r) => h('tr', { dataset: { name: r.name } },
        h('td', { 'data-label': 'Repository' }, h('a', { href: refPath(r.name) }, r.name)),
        h('td', { 'data-label': 'Exclusive', class: 'num', title: r.exclusive + ' bytes' }, size(r.exclusive)),
        h('td', { 'data-label': 'Shared', class: 'num', title: r.shared + ' bytes' }, size(r.shared)))),
      h('tr', { class: 'total' }, h('th', { scope: 'row' }, 'Total'), h('td', { 'data-label': 'Exclusive', class: 'num' }, size(sum('exclusive'))),
        // (shared bytes belong to several repositories: a sum would count them more than once)
        h('td', { 'data-label': 'Shared', class: 'num', title: 'shared bytes are not added up' }, '–')))));
  } else {
    parts.push(h('p', { class: 'empty' }, 'No repositories.'));
  }
  show(parts);
}

// ---- router -----------------------------------------------------------------------------------

async function route(keepFocus) {
  const id = ++state.renderId;
  state.routedTo = location.pathname + location.search;
  const r = parseRoute(location.pathname);
  for (const a of document.querySelectorAll('.top nav a')) {
    const on = (a.dataset.nav === 'repos' && (r.page === 'repos' || r.page === 'repo' || r.page === 'image')) ||
      (a.dataset.nav === 'storage' && r.page === 'storage');
    if (on) a.setAttribute('aria-current', 'page'); else a.removeAttribute('aria-current');
  }
  if (!state.session) {
    try {
      await loadSession();
    } catch (e) {
      if (id === state.renderId) errorView(e, 'The registry did not answer');
      return;
    }
    if (id !== state.renderId) return;
  }
  if (state.session.login_required && !state.session.user) {
    showLogin(sessionStorage.getItem(CREDS) ? 'Your credentials were refused.' : '');
    return;
  }
  // after a navigation (not the first load) the focus moves to the new content
  if (!keepFocus && state.routed) main.focus({ preventScroll: true });
  state.routed = true;
  if (r.page === 'repos') return repositoriesPage(id);
  if (r.page === 'repo') return repositoryPage(id, r.name);
  if (r.page === 'image') return imagePage(id, r.name, r.ref);
  if (r.page === 'storage') return storagePage(id);
  document.title = 'Not found · berth';
  show(h('h1', {}, 'Not found'), h('p', {}, 'No page at ', h('code', {}, location.pathname), '. ',
    h('a', { href: '/ui/' }, 'Back to the repositories')));
}

// stored credentials are checked once at start: a refused login goes back to the form
(async () => {
  try {
    await loadSession();
    if (sessionStorage.getItem(CREDS) && !state.session.user && state.session.auth !== 'none') {
      sessionStorage.removeItem(CREDS);
      await loadSession();
    }
  } catch (e) {
    if (!(e instanceof ApiError)) console.error(e); // a bug, not the registry: show it
    /* route() reports the registry's errors */
  }
  route();
})();
