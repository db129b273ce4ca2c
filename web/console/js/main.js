// The console's frame: sign-in, the header (org, user, the test/live switch,
// logout), the navigation and a hash router that renders one view at a time.
// Views are modules with render(root, ctx, ...params); they fetch what they
// show through api.js and put errors on the page, so nothing ends blank.

import * as api from './api.js';
import * as session from './session.js';
import { h, fill } from './dom.js';
import { errorBox } from './ui.js';
import { renderLogin } from './views/login.js';
import { renderOrg } from './views/org.js';
import { renderMembers } from './views/members.js';
import { renderRoles } from './views/roles.js';
import { renderKeys } from './views/keys.js';
import { renderServices, renderService } from './views/services.js';
import { renderSchemaEditor } from './views/schema-editor.js';
import { renderRecords } from './views/records.js';
import { renderAudit } from './views/audit.js';
import { renderFleet } from './views/fleet.js';
import { renderJoin } from './views/join.js';

const app = document.getElementById('app');

// One row per page: its hash pattern (groups are the view's parameters), the
// view, its entry in the navigation (null: reached by links), and whether it
// is for platform admins only (the API refuses the others anyway; the console
// does not offer what would only answer 403).
const ROUTES = [
    { re: /^#\/org$/, view: renderOrg, nav: ['#/org', 'Organization'] },
    { re: /^#\/members$/, view: renderMembers, nav: ['#/members', 'Members'] },
    { re: /^#\/roles$/, view: renderRoles, nav: ['#/roles', 'Roles'] },
    { re: /^#\/keys$/, view: renderKeys, nav: ['#/keys', 'API keys'] },
    { re: /^#\/data$/, view: renderServices, nav: ['#/data', 'Data'] },
    { re: /^#\/data\/([^/]+)$/, view: renderService },
    { re: /^#\/data\/([^/]+)\/([^/]+)$/, view: renderRecords },
    { re: /^#\/schema\/([^/]+)\/([^/]+)$/, view: renderSchemaEditor, admin: true },
    { re: /^#\/audit$/, view: renderAudit, nav: ['#/audit', 'Audit trail'] },
    { re: /^#\/fleet$/, view: renderFleet, nav: ['#/fleet', 'Fleet'], admin: true },
    { re: /^#\/join$/, view: renderJoin, nav: ['#/join', 'Accept an invite'] },
];
const HOME = '#/org';

let me = null;          // GET /v1/auth/me of the signed-in user, in the current mode
let viewSeq = 0;        // a view still loading when another starts must not draw
let signingOut = false; // logout clears the session itself and says so

// A failure nobody caught still reaches the screen.
window.addEventListener('unhandledrejection', (ev) => banner(ev.reason));
window.addEventListener('error', (ev) => banner(ev.error ?? ev.message));

function banner(err) {
    const el = document.getElementById('fatal') ?? document.body.appendChild(h('div', { id: 'fatal' }));
    fill(el, errorBox(err instanceof Error ? err : new Error(String(err))));
}

session.onChange((next, prev) => {
    if (prev.access !== null && next.access === null && !signingOut) start('Your session ended: sign in again.');
});
window.addEventListener('hashchange', () => {
    if (me === null) return;
    const flash = document.getElementById('flash');
    if (flash !== null) fill(flash);
    route();
});

/**
 * Loads who the user is and draws the frame, or the login form. notice: a
 * line for the login form, or above the first page of the frame.
 */
async function start(notice) {
    me = null;
    if (!session.signedIn()) {
        document.body.classList.remove('mode-live');
        fill(app, renderLogin({ notice, onSignedIn: () => start() }));
        return;
    }
    fill(app, h('p', { class: 'loading', text: 'Loading…' }));
    try {
        me = (await api.get('/v1/auth/me')).data;
    } catch (err) {
        if (!session.signedIn()) return; // a 401 cleared the session: onChange shows the login
        fill(app, errorBox(err), h('button', { type: 'button', text: 'Try again', on: { click: () => start() } }));
        return;
    }
    drawFrame(notice);
    route();
}

function isPlatformAdmin() {
    return me !== null && me.user && me.user.is_platform_admin === true;
}

function drawFrame(notice) {
    const mode = session.current().mode;
    document.body.classList.toggle('mode-live', mode === 'live');
    const modeButton = (m, label) => h('button', {
        type: 'button', class: ['mode', `mode-${m}`], 'aria-pressed': String(mode === m), name: `mode-${m}`, text: label,
        on: { click: () => switchMode(m) },
    });
    const nav = ROUTES.filter((r) => r.nav && (!r.admin || isPlatformAdmin()))
        .map(({ nav: [href, label] }) => h('a', { href, 'data-nav': href, text: label }));
    fill(app,
        h('header', { class: 'top' },
            h('span', { class: 'brand', text: 'tessera' }),
            h('span', { class: 'who' },
                h('strong', { class: 'org-name', text: me.org ? me.org.name : '—' }), ' · ',
                h('span', { class: 'user-email', text: me.user ? me.user.email : '—' }), ' · ',
                h('span', { class: 'role', text: me.role ?? '—' }),
                isPlatformAdmin() ? h('span', { class: 'badge', text: 'platform admin' }) : null),
            h('span', { class: 'modes', role: 'group', 'aria-label': 'Mode' },
                modeButton('test', 'Test'), modeButton('live', 'Live')),
            h('button', { type: 'button', name: 'logout', text: 'Log out', on: { click: logout } })),
        mode === 'live'
            ? h('div', { class: 'live-banner', id: 'mode-banner', text: 'LIVE MODE — real data and live keys' })
            : h('div', { class: 'test-banner', id: 'mode-banner', text: 'Test mode — sandbox data and test keys' }),
        h('nav', { class: 'side' }, nav),
        h('main', {},
            h('div', { id: 'flash', class: 'messages', 'aria-live': 'polite' }, notice ? h('p', { class: 'notice', text: notice }) : null),
            h('div', { id: 'view' })));
}

async function switchMode(mode) {
    if (mode === session.current().mode) return;
    session.setMode(mode);
    await start();
}

async function logout() {
    let notice = 'Logged out.';
    signingOut = true;
    try {
        await api.post('/v1/auth/logout');
    } catch (err) {
        // the token is forgotten here whatever the API said; tell the user
        notice = `Logged out here, but the API said: ${err.message}`;
    } finally {
        session.clear();
        signingOut = false;
    }
    start(notice);
}

/**
 * Carries on with another token pair (an invite accepted: a pair for the org
 * joined). The current session is logged out first, as its tokens are about
 * to be forgotten and should not outlive this tab's use of them; then the
 * frame is drawn again for the new org, on its organization page.
 */
async function switchSession(pair, notice) {
    const mode = session.current().mode;
    signingOut = true;   // a 401 from the logout clears the session: no login form for that
    try {
        await api.post('/v1/auth/logout');
    } catch (err) {
        notice += ` (The previous session's logout failed: ${err.message})`;
    } finally {
        session.setTokens(pair.access_token, pair.refresh_token);
        if (session.current().mode !== mode) session.setMode(mode);
        signingOut = false;
    }
    history.replaceState(null, '', HOME);
    await start(notice);
}

function route() {
    if (!location.hash || location.hash === '#' || location.hash === '#/') {
        location.replace(HOME);
        return;
    }
    const view = document.getElementById('view');
    if (view === null) return;
    for (const a of document.querySelectorAll('nav a')) {
        a.classList.toggle('current', location.hash === a.dataset.nav || location.hash.startsWith(`${a.dataset.nav}/`));
    }
    const seq = ++viewSeq;
    const root = h('section', { class: 'view' });
    fill(view, root);
    for (const { re, view: render, admin } of ROUTES) {
        const m = re.exec(location.hash);
        if (!m) continue;
        if (admin && !isPlatformAdmin()) {
            fill(root, h('h1', { text: 'Platform admins only' }),
                h('p', { text: 'This page is for the platform\'s admins; your account is not one.' }));
            return;
        }
        const ctx = {
            me, platformAdmin: isPlatformAdmin(), mode: session.current().mode, live: () => seq === viewSeq, switchSession,
        };
        // a view is async; what it throws (an ApiError, a bad %-escape in the
        // address) is shown in its place
        Promise.resolve().then(() => render(root, ctx, ...m.slice(1).map(decodeURIComponent))).catch((err) => {
            if (seq === viewSeq) fill(root, errorBox(err));
        });
        return;
    }
    fill(root, h('h1', { text: 'Not found' }), h('p', {}, 'No page here. ', h('a', { href: HOME, text: 'Back to the organization' })));
}

start();
