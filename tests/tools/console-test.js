// The web console in a real browser (Debian's Chromium, headless, driven by
// puppeteer-core): tests/integration/85_console.sh runs it against a stack
// it started. It logs in as the platform admin, makes, edits and (where
// nothing holds it) deletes roles, invites an existing user by email, defines
// a resource and makes records through the UI (a timestamp field as RFC 3339
// text and as unix seconds), pages a list of more records than a page holds
// by clicking, edits and deletes with If-Match, sees a refused retype's 409,
// a viewer's 403, and the test/live switch change the mode of every call;
// then the invited user logs in, accepts the invite in the UI and is in the
// new org. An error the page shows is the API's own message (the answer's
// envelope, recorded as the browser got it).
// Throughout it records every request the page makes: each must go to this
// origin, to a console file or a path of the API's own /openapi.json.
//
//   node console-test.js URL ARTIFACT_DIR PROFILE_DIR
// env: CHROMIUM (default /usr/bin/chromium), BROWSER_PID_FILE (the browser's
// pid is written there, so the suite can kill it should this script die),
// CONSOLE_SCREENSHOTS=1 (a screenshot after every step too, to look at).
// Prints `ok - …` / `not ok - …` lines; on a failure, a screenshot, the page's
// HTML and its console log go to ARTIFACT_DIR. Exits 1 when a step failed.
'use strict';

const fs = require('fs');
const path = require('path');
const puppeteer = require('puppeteer-core');

const [URL_BASE, ARTIFACTS, PROFILE] = process.argv.slice(2);
if (!URL_BASE || !ARTIFACTS || !PROFILE) {
    console.error('usage: node console-test.js URL ARTIFACT_DIR PROFILE_DIR');
    process.exit(2);
}
const ORIGIN = new URL(URL_BASE).origin;
const CONSOLE = `${ORIGIN}/console/`;
const PASSWORD = 'tessera-dev';
const ADMIN = 'admin@example.com';
const VIEWER = 'victor@acme.test';      // seed/dev: a viewer of Acme, the admin's org
const BOB = 'bob@globex.test';          // seed/dev: owner of Globex, invited into Acme below
const ROLE = `triage${process.pid}`;    // a role of Acme's own, made, edited and given to Bob's invite
const SCRATCH = `scratch${process.pid}`; // a role nothing holds, deleted
const RES = `tickets_${process.pid}`;   // a resource of its own, in the seed's service crm
const EXTRA = 25;                       // records made through the API: three pages of 10 with the UI's one
const WAIT = { timeout: 15000 };

let failed = 0;
const consoleLog = [];
const requests = [];     // {method, url, mode, auth, body}
const apiErrors = [];    // {method, url, status, code, message}: the error answers the page got
let page = null;

function ok(name) {
    console.log(`ok - ${name}`);
}

async function notOk(name, err) {
    failed++;
    console.log(`not ok - ${name}`);
    for (const line of String(err && err.stack ? err.stack : err).split('\n').slice(0, 8)) console.log(`#   ${line}`);
    await saveArtifacts(name);
}

async function saveArtifacts(name) {
    try {
        fs.mkdirSync(ARTIFACTS, { recursive: true });
        const base = path.join(ARTIFACTS, name.replace(/[^A-Za-z0-9]+/g, '-').slice(0, 60));
        fs.writeFileSync(path.join(ARTIFACTS, 'console.log'), consoleLog.join('\n') + '\n');
        fs.writeFileSync(path.join(ARTIFACTS, 'requests.log'),
            requests.map((r) => `${r.method} ${r.url} mode=${r.mode}`).join('\n') + '\n');
        if (page && !page.isClosed()) {
            await shoot(name);
            fs.writeFileSync(`${base}.html`, await page.content());
        }
        console.log(`#   artifacts: ${ARTIFACTS}`);
    } catch (e) {
        console.log(`#   (could not save artifacts: ${e.message})`);
    }
}

// step(name, fn): runs one check; a failure is reported and ends the run, as
// every later step builds on the earlier ones.
async function step(name, fn) {
    try {
        await fn();
        ok(name);
        if (process.env.CONSOLE_SCREENSHOTS) await shoot(`${String(++shots).padStart(2, '0')}-${name}`);
    } catch (err) {
        await notOk(name, err);
        throw new Stop();
    }
}
class Stop extends Error {}
let shots = 0;

async function shoot(name) {
    fs.mkdirSync(ARTIFACTS, { recursive: true });
    await page.screenshot({ path: path.join(ARTIFACTS, `${name.replace(/[^A-Za-z0-9]+/g, '-').slice(0, 60)}.png`), fullPage: true });
}

function assert(cond, what) {
    if (!cond) throw new Error(`assertion failed: ${what}`);
}

function eq(got, want, what) {
    if (JSON.stringify(got) !== JSON.stringify(want))
        throw new Error(`${what}: got ${JSON.stringify(got)}, wanted ${JSON.stringify(want)}`);
}

// --- the API, for the setup only (extra records) and the path templates
async function apiCall(method, p, { token, body, mode = 'test' } = {}) {
    const headers = { 'Tessera-Mode': mode };
    if (token) headers.Authorization = `Bearer ${token}`;
    if (body !== undefined) headers['Content-Type'] = 'application/json';
    const res = await fetch(ORIGIN + p, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
    const text = await res.text();
    if (!res.ok) throw new Error(`${method} ${p}: ${res.status} ${text.slice(0, 200)}`);
    return text ? JSON.parse(text) : null;
}

// /openapi.json's paths as matchers: {service} and the like match one segment
async function apiTemplates() {
    const doc = await apiCall('GET', '/openapi.json');
    return Object.entries(doc.paths).map(([tpl, ops]) => ({
        tpl,
        methods: new Set(Object.keys(ops).map((m) => m.toUpperCase())),
        re: new RegExp(`^${tpl.replace(/[.*+?^$()|[\]\\]/g, '\\$&').replace(/\\?\{[^}]+\\?\}/g, '[^/]+')}$`),
    }));
}

// Why a request is not the console's business, or null when it is.
function offense(templates, method, url) {
    const u = new URL(url);
    if (u.origin !== ORIGIN) return `another origin: ${u.origin}`;
    if (u.pathname.startsWith('/console/')) return method === 'GET' ? null : `${method} of a console file`;
    // several templates may match (…/{id} and …/search): any that has the method will do
    const matching = templates.filter((x) => x.re.test(u.pathname));
    if (matching.length === 0) return 'no path of /openapi.json';
    if (!matching.some((t) => t.methods.has(method) || (method === 'HEAD' && t.methods.has('GET'))))
        return `${method} is not documented for ${matching.map((t) => t.tpl).join(' or ')}`;
    return null;
}

// --- the page
const text = (sel) => page.$eval(sel, (el) => el.textContent);
async function click(sel) {
    const el = await page.waitForSelector(sel, { visible: true, ...WAIT });
    await el.click();
}
async function type(sel, value) {
    const el = await page.waitForSelector(sel, { visible: true, ...WAIT });
    await el.click({ clickCount: 3 });
    await el.evaluate((e) => { e.value = ''; });
    await el.type(String(value));
}
async function choose(sel, value) {
    await page.waitForSelector(sel, WAIT);
    await page.select(sel, value);
}
// waits for an element whose text contains `want`
async function see(sel, want) {
    try {
        await page.waitForFunction((s, w) => [...document.querySelectorAll(s)].some((e) => e.textContent.includes(w)),
            WAIT, sel, want);
    } catch (err) {
        if (err.name !== 'TimeoutError') throw err;
        const found = await page.$$eval(sel, (els) => els.map((e) => e.textContent.trim().slice(0, 80))).catch(() => []);
        const shown = await page.$$eval('.error, .notice', (els) => els.map((e) => e.textContent.trim().slice(0, 200))).catch(() => []);
        throw new Error(`no ${sel} saying “${want}” within ${WAIT.timeout / 1000} s; ${sel}: ${JSON.stringify(found)}` +
            (shown.length ? `; messages on the page: ${JSON.stringify(shown)}` : ''));
    }
}
// The API refused the last such call with `status` and the page shows that
// answer's own message (and its status), whatever the message says.
async function apiErrorShown(status, method, pathRe) {
    await see('.error .error-meta', `HTTP ${status}`);
    const deadline = Date.now() + WAIT.timeout;
    let e;
    while (!(e = apiErrors.findLast((x) => x.status === status && x.method === method && pathRe.test(new URL(x.url).pathname)))) {
        if (Date.now() > deadline) throw new Error(`no ${status} answer to ${method} ${pathRe} recorded: ${JSON.stringify(apiErrors)}`);
        await new Promise((r) => setTimeout(r, 50));
    }
    assert(typeof e.message === 'string' && e.message.length > 0, `the ${status} has a message`);
    await see('.error .error-message', e.message);
    return e;
}
const TIME_SHOWN = /^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC$/;
async function go(hash) {
    await page.evaluate((h) => { location.hash = h; }, hash);
}
async function rowsShown() {
    return page.$$eval('.records tbody tr', (trs) => trs.map((tr) => [...tr.cells].map((c) => c.textContent)));
}
async function login(email) {
    await type('form.login input[name=email]', email);
    await type('form.login input[name=password]', PASSWORD);
    await click('form.login button[type=submit]');
    await page.waitForSelector('header.top .user-email', WAIT);
    await see('header.top .user-email', email);
}

async function main() {
    const templates = await apiTemplates();
    const browser = await puppeteer.launch({
        executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
        headless: true,
        userDataDir: PROFILE,
        args: ['--headless=new', '--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage',
            '--disable-background-networking', '--no-first-run', '--disable-crash-reporter', '--disable-breakpad',
            '--disable-component-update', '--disable-sync', '--no-default-browser-check', '--disable-extensions'],
    });
    const pid = browser.process() ? browser.process().pid : null;
    if (pid && process.env.BROWSER_PID_FILE) fs.writeFileSync(process.env.BROWSER_PID_FILE, `${pid}\n`);
    try {
        page = await browser.newPage();
        page.setDefaultTimeout(WAIT.timeout);
        await page.setViewport({ width: 1280, height: 900 });
        page.on('console', (m) => consoleLog.push(`[${m.type()}] ${m.text()}`));
        page.on('pageerror', (e) => consoleLog.push(`[pageerror] ${e.message}`));
        page.on('dialog', (d) => d.accept());          // the console's confirm() before a delete
        page.on('request', (r) => {
            const h = r.headers();
            requests.push({ method: r.method(), url: r.url(), mode: h['tessera-mode'] ?? null, auth: 'authorization' in h, body: r.postData() });
        });
        page.on('response', async (res) => {
            if (res.status() < 400 || new URL(res.url()).pathname.startsWith('/console/')) return;
            const e = { method: res.request().method(), url: res.url(), status: res.status(), code: null, message: null };
            try {
                const env = (await res.json()).error;
                e.code = env.code;
                e.message = env.message;
            } catch { /* no JSON: the page says so in its own words */ }
            apiErrors.push(e);
        });
        await run(templates);
    } finally {
        await Promise.race([browser.close(), new Promise((r) => setTimeout(r, 5000))]).catch(() => {});
        if (pid) {
            try { process.kill(pid, 'SIGKILL'); } catch { /* already gone: the usual case */ }
        }
    }
}

async function run(templates) {
    let doc;
    await step('the console loads at /console/ with its login form', async () => {
        doc = await page.goto(CONSOLE, { waitUntil: 'networkidle0' });
        assert(doc.status() === 200, `status ${doc.status()}`);
        await page.waitForSelector('form.login input[name=email]', WAIT);
    });
    await step('nginx sends the strict Content-Security-Policy, nosniff and no-referrer', async () => {
        const h = doc.headers();
        const csp = h['content-security-policy'] ?? '';
        for (const want of ["default-src 'none'", "script-src 'self'", "style-src 'self'", "connect-src 'self'",
            "frame-ancestors 'none'", "base-uri 'none'", "form-action 'none'"])
            assert(csp.includes(want), `CSP has ${want}: ${csp}`);
        assert(!/unsafe-inline|unsafe-eval/.test(csp), 'no unsafe-* in the CSP');
        assert(h['x-content-type-options'] === 'nosniff', 'nosniff');
        assert(h['referrer-policy'] === 'no-referrer', 'no-referrer');
    });
    await step('the page has no inline script, inline style or inline event handler', async () => {
        const bad = await page.evaluate(() => {
            const out = [];
            for (const s of document.scripts) if (!s.src) out.push('inline <script>');
            for (const el of document.querySelectorAll('*')) {
                if (el.hasAttribute('style')) out.push(`style= on <${el.tagName}>`);
                for (const a of el.attributes) if (/^on/i.test(a.name)) out.push(`${a.name}= on <${el.tagName}>`);
            }
            return out;
        });
        assert(bad.length === 0, bad.join(', '));
    });

    await step('the platform admin logs in (email + password)', async () => {
        await login(ADMIN);
        await see('header.top .badge', 'platform admin');
        await see('header.top .org-name', 'Acme Corp');
    });
    await step('the token is in sessionStorage, nothing in localStorage', async () => {
        const s = await page.evaluate(() => ({ local: localStorage.length, session: sessionStorage.getItem('tessera.console.session') }));
        assert(s.local === 0, `localStorage has ${s.local} item(s)`);
        assert(s.session && JSON.parse(s.session).access, 'a token in sessionStorage');
    });
    await step('the organization page shows the org and the caller in test mode', async () => {
        await see('main h1', 'Acme Corp');
        await see('.mode-now', 'test');
        await see('#mode-banner', 'Test mode');
    });

    await step('roles: the built-ins are read-only, a new role is created', async () => {
        await click('nav a[href="#/roles"]');
        await see('main td', 'built-in');
        await type('form.role-create input[name=name]', ROLE);
        await type('form.role-create textarea[name=permissions]', 'records:read:crm/*\naudit:read:*');
        await click('form.role-create button[type=submit]');
        await see('.notice', 'created');
        await see('main td code', ROLE);
    });
    await step('roles: a taken name is refused, the API\'s 409 and its message shown', async () => {
        await type('form.role-create input[name=name]', ROLE);
        await type('form.role-create textarea[name=permissions]', 'records:read:*');
        await click('form.role-create button[type=submit]');
        await apiErrorShown(409, 'POST', /^\/v1\/roles$/);
    });
    await step('roles: a custom role\'s permissions are edited (GET, then PATCH /v1/roles/{name})', async () => {
        await click(`.role-edit[data-role="${ROLE}"] button[name=edit-role]`);
        const area = `.role-edit[data-role="${ROLE}"] textarea[name=permissions]`;
        await page.waitForSelector(area, WAIT);
        const before = await page.$eval(area, (e) => e.value);
        assert(before === 'records:read:crm/*\naudit:read:*', `the form starts from the role: ${JSON.stringify(before)}`);
        await type(area, 'records:read:crm/*\nrecords:write:crm/*\naudit:read:*');
        await click(`.role-edit[data-role="${ROLE}"] button[type=submit]`);
        await see('.notice', `Role ${ROLE} saved`);
        // the notice comes with the PATCH's answer; the table is drawn again
        // from a fresh GET /v1/roles after it, so wait for that (a loaded
        // machine showed the old row for a moment), then read it
        await page.waitForFunction((name, want) => JSON.stringify([...document.querySelectorAll('main tbody tr')]
            .filter((tr) => tr.cells[0].textContent === name)
            .map((tr) => [...tr.cells[2].querySelectorAll('code')].map((c) => c.textContent))) === want,
        WAIT, ROLE, JSON.stringify([['records:read:crm/*', 'records:write:crm/*', 'audit:read:*']])).catch(() => {});
        const perms = await page.$$eval('main tbody tr', (trs, name) => trs.filter((tr) => tr.cells[0].textContent === name)
            .map((tr) => [...tr.cells[2].querySelectorAll('code')].map((c) => c.textContent)), ROLE);
        assert(JSON.stringify(perms) === JSON.stringify([['records:read:crm/*', 'records:write:crm/*', 'audit:read:*']]),
            `the role's permissions listed: ${JSON.stringify(perms)}`);
        const asked = requests.filter((r) => new URL(r.url).pathname === `/v1/roles/${ROLE}`).map((r) => r.method);
        assert(asked.includes('GET') && asked.includes('PATCH'), `GET and PATCH /v1/roles/${ROLE}: ${asked}`);
    });
    let inviteToken;
    await step('members: an invite names an email (an existing user\'s) and shows its one-time token', async () => {
        await click('nav a[href="#/members"]');
        await see('.members-list td', 'victor@acme.test');
        const joined = await page.$$eval('.members-list tbody tr', (trs) => trs.map((tr) => tr.cells[2].textContent));
        assert(joined.length > 0 && joined.every((t) => TIME_SHOWN.test(t)), `joined times: ${joined}`);
        await page.waitForSelector(`form.invite select[name=role] option[value="${ROLE}"]`, WAIT);
        await type('form.invite input[name=email]', BOB);
        await choose('form.invite select[name=role]', ROLE);
        await click('form.invite button[type=submit]');
        await page.waitForSelector('.secret .secret-value', WAIT);
        inviteToken = await page.$eval('.secret .secret-value', (e) => e.value);
        assert(inviteToken.length >= 20, `an invite token: ${inviteToken}`);
        const title = await text('.secret .secret-title');
        assert(title.includes(BOB) && title.includes(ROLE) && / until \d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC\)/.test(title),
            `the invite's email, role and expiry: ${title}`);
        const sent = requests.findLast((r) => r.method === 'POST' && r.url.endsWith('/v1/orgs/current/members'));
        assert(sent && JSON.parse(sent.body).email === BOB, `the email was sent: ${sent && sent.body}`);
    });
    await step('roles: a role an open invite holds is not deleted: the API\'s 409 and its message shown', async () => {
        await click('nav a[href="#/roles"]');
        await click(`.role-edit[data-role="${ROLE}"] button[name=delete-role]`);
        await apiErrorShown(409, 'DELETE', new RegExp(`^/v1/roles/${ROLE}$`));
        await see('main td code', ROLE);
    });
    await step('roles: a role nothing holds is deleted', async () => {
        await type('form.role-create input[name=name]', SCRATCH);
        await type('form.role-create textarea[name=permissions]', 'audit:read:*');
        await click('form.role-create button[type=submit]');
        await see('main td code', SCRATCH);
        await click(`.role-edit[data-role="${SCRATCH}"] button[name=delete-role]`);
        await see('.notice', `Role ${SCRATCH} deleted`);
        await page.waitForFunction((n) => ![...document.querySelectorAll('main td code')].some((c) => c.textContent === n), WAIT, SCRATCH);
        assert(requests.some((r) => r.method === 'DELETE' && new URL(r.url).pathname === `/v1/roles/${SCRATCH}`), 'DELETE /v1/roles/{name}');
    });

    await step('Data lists crm (GET /v1/apps, kind microservice) and opens it', async () => {
        await click('nav a[href="#/data"]');
        await click('main a[href="#/data/crm"]');
        await page.waitForSelector('form.new-resource', WAIT);
    });
    await step(`a resource crm/${RES} is defined in the schema editor`, async () => {
        await type('form.new-resource input[name=resource]', RES);
        await click('form.new-resource button[type=submit]');
        await page.waitForSelector('form.schema-editor', WAIT);
        const addField = async (name, typ, { required = false } = {}) => {
            await click('button[name=add-field]');
            await type('form.schema-editor tbody tr:last-child input[name=field-name]', name);
            await choose('form.schema-editor tbody tr:last-child select[name=field-type]', typ);
            if (required) await click('form.schema-editor tbody tr:last-child input[name=field-required]');
        };
        await addField('title', 'string', { required: true });
        await addField('prio', 'integer');
        await addField('note', 'text');
        await addField('stage', 'string');
        await type('form.schema-editor tbody tr:last-child input[name=field-default]', '"new"');
        await addField('due', 'timestamp');
        await addField('emb', 'vector');
        await type('form.schema-editor tbody tr:last-child input[name=field-dim]', '3');
        await type('form.schema-editor textarea[name=options]', '{"views": {"by_stage": {"group_by": ["stage"], "count": true}}}');
        await click('form.schema-editor button[type=submit]');
        await see('.notice', 'version 1');
    });
    await step('a record is created through the UI', async () => {
        await click(`main a[href="#/data/crm/${RES}"]`);
        await click('button[name=new-record]');
        await type('form.record-edit input[name=rec-title]', 'made in the browser');
        await type('form.record-edit input[name=rec-prio]', '0');
        await type('form.record-edit textarea[name=rec-note]', '<img src=x onerror=alert(1)>');
        await type('form.record-edit input[name=rec-due]', '2026-12-07T15:31:52Z');
        await click('form.record-edit button[type=submit]');
        await see('.notice', 'Created');
        await see('.records td', 'made in the browser');
    });
    await step('times are shown readably: the timestamp field and the record\'s updated_at (RFC 3339 from the API)', async () => {
        await see('.records td', '2026-12-07 15:31:52 UTC');
        const sent = requests.findLast((r) => r.method === 'POST' && r.url.endsWith(`/v1/svc/crm/${RES}`));
        assert(JSON.parse(sent.body).due === '2026-12-07T15:31:52Z', `the time sent as typed: ${sent.body}`);
        const updated = await page.$$eval('.records tbody tr', (trs) => trs.map((tr) => tr.cells[tr.cells.length - 2].textContent));
        assert(updated.length === 1 && TIME_SHOWN.test(updated[0]), `updated: ${updated}`);
    });
    await step('a filter on the timestamp field in RFC 3339 (due=gte.2026-12-01T00:00:00Z)', async () => {
        await type('form.list-controls input[name=filters]', 'due=gte.2026-12-08T00:00:00Z');
        await click('form.list-controls button[type=submit]');
        await see('.records .empty, p.empty', 'No records match');
        await type('form.list-controls input[name=filters]', 'due=gte.2026-12-01T00:00:00Z');
        await click('form.list-controls button[type=submit]');
        await see('.pager .page-no', 'Page 1 · 1 record(s)');
        await see('.records td', 'made in the browser');
        await type('form.list-controls input[name=filters]', '');
    });
    await step('API data is shown as text, never markup (XSS)', async () => {
        const cell = await page.$$eval('.records td', (tds) => tds.map((t) => t.textContent).find((t) => t.includes('onerror')));
        assert(cell === '<img src=x onerror=alert(1)>', `the note shown as typed: ${cell}`);
        assert(await page.$('.records img') === null, 'no <img> element in the table');
    });

    // more records than a page holds, through the API (the paging is clicked below)
    const token = (await apiCall('POST', '/v1/auth/login', { body: { email: ADMIN, password: PASSWORD } })).access_token;
    for (let i = 1; i <= EXTRA; i++)
        await apiCall('POST', `/v1/svc/crm/${RES}`, { token, body: { title: `ticket ${String(i).padStart(2, '0')}`, prio: i, emb: [i, 1, 0] } });

    await step(`keyset paging in the UI: ${EXTRA + 1} records, 10 a page, Next, Next, Previous`, async () => {
        await choose('form.list-controls select[name=limit]', '10');
        await choose('form.list-controls select[name=order]', 'prio.asc');
        await click('form.list-controls button[type=submit]');
        await see('.pager .page-no', 'Page 1 · 10 record(s)');
        const p1 = await rowsShown();
        assert(p1[0][1] === 'made in the browser' && p1[9][1] === 'ticket 09', `page 1 by prio: ${p1.map((r) => r[1])}`);
        await click('.pager button[name=next]');
        await see('.pager .page-no', 'Page 2 · 10 record(s)');
        const p2 = await rowsShown();
        assert(p2[0][1] === 'ticket 10' && p2[9][1] === 'ticket 19', `page 2: ${p2.map((r) => r[1])}`);
        await click('.pager button[name=next]');
        await see('.pager .page-no', 'Page 3 · 6 record(s)');
        const p3 = await rowsShown();
        assert(p3[5][1] === 'ticket 25', `page 3: ${p3.map((r) => r[1])}`);
        assert(await page.$('.pager button[name=next]') === null, 'no Next on the last page');
        await click('.pager button[name=prev]');
        await see('.pager .page-no', 'Page 2 · 10 record(s)');
        const cursored = requests.filter((r) => r.url.includes(`/v1/svc/crm/${RES}?`) && r.url.includes('cursor='));
        assert(cursored.length >= 3, `the pages were asked with cursor= (${cursored.length})`);
    });
    await step('filters in the list language (prio=gte.20) and descending order', async () => {
        await type('form.list-controls input[name=filters]', 'prio=gte.20');
        await choose('form.list-controls select[name=order]', 'prio.desc');
        await click('form.list-controls button[type=submit]');
        await see('.pager .page-no', 'Page 1 · 6 record(s)');
        const rows = await rowsShown();
        assert(rows[0][1] === 'ticket 25' && rows[5][1] === 'ticket 20', `filtered: ${rows.map((r) => r[1])}`);
    });
    await step('the resource\'s view (by_stage) shows its rows from the projector', async () => {
        // the projector applies the writes just after they commit: ask until it has
        const deadline = Date.now() + WAIT.timeout;
        for (;;) {
            await click('form.views button[type=submit]');
            await page.waitForSelector('.panel td.num', WAIT);
            const counts = await page.$$eval('.panel td.num', (tds) => tds.map((t) => t.textContent));
            if (counts.includes(String(EXTRA + 1))) break;
            if (Date.now() > deadline) throw new Error(`the view's counts: ${counts}`);
            await new Promise((r) => setTimeout(r, 200));
        }
        await see('.panel td', 'new');
        await see('.panel p.hint', 'lag');
    });
    await step('vector search (POST …/search) finds the nearest records, with a filter', async () => {
        await type('form.search input[name=vector]', '[25, 1, 0]');
        await type('form.search input[name=k]', '3');
        await type('form.search input[name=filters]', 'prio=lte.24');
        await click('form.search button[type=submit]');
        await page.waitForSelector('.panel:last-child tbody tr', WAIT);
        const titles = await page.$$eval('.panel:last-child tbody tr', (trs) => trs.map((tr) => tr.cells[2].textContent));
        assert(JSON.stringify(titles) === JSON.stringify(['ticket 24', 'ticket 23', 'ticket 22']), `nearest: ${titles}`);
    });
    await step('a bad filter shows the API\'s 400 message', async () => {
        await type('form.list-controls input[name=filters]', 'nosuch=eq.1');
        await click('form.list-controls button[type=submit]');
        await see('.error .error-message', 'nosuch');
        await see('.error .error-meta', 'HTTP 400');
    });
    await step('a record is edited with If-Match (its version goes 1 → 2)', async () => {
        await type('form.list-controls input[name=filters]', 'prio=eq.25');
        await click('form.list-controls button[type=submit]');
        await see('.pager .page-no', '1 record(s)');
        await click('.records button[name=edit-record]');
        await type('form.record-edit input[name=rec-title]', 'ticket 25, edited');
        await type('form.record-edit input[name=rec-due]', '1767225600');
        await click('form.record-edit button[type=submit]');
        await see('.notice', 'version 2');
        await see('.records td', 'ticket 25, edited');
        await see('.records td', '2026-01-01 00:00:00 UTC');
        const patch = requests.filter((r) => r.method === 'PATCH' && r.url.includes(`/v1/svc/crm/${RES}/`));
        assert(patch.length === 1, 'one PATCH');
        eq(JSON.parse(patch[0].body), { title: 'ticket 25, edited', due: 1767225600 }, 'the PATCH sends the changed fields, unix seconds as a number');
    });
    await step('the edit form shows the stored time as RFC 3339; an offset is folded into UTC (version 3)', async () => {
        await click('.records button[name=edit-record]');
        await page.waitForSelector('form.record-edit input[name=rec-due]', WAIT);
        const shown = await page.$eval('form.record-edit input[name=rec-due]', (e) => e.value);
        assert(shown === '2026-01-01T00:00:00Z', `the form's due: ${shown}`);
        await type('form.record-edit input[name=rec-due]', '2026-01-01T02:00:00+01:00');
        await click('form.record-edit button[type=submit]');
        await see('.notice', 'version 3');
        await see('.records td', '2026-01-01 01:00:00 UTC');
        const last = requests.filter((r) => r.method === 'PATCH' && r.url.includes(`/v1/svc/crm/${RES}/`)).at(-1);
        eq(JSON.parse(last.body), { due: '2026-01-01T02:00:00+01:00' }, 'only the changed field');
    });
    await step('a record is deleted (If-Match) and is gone from the list', async () => {
        await click('.records button[name=delete-record]');
        await see('.notice', 'Deleted');
        await see('.records .empty, p.empty', 'No records match');
    });

    await step('a retype the records cannot take is refused: the 409 and its explanation are shown', async () => {
        await go(`#/schema/crm/${RES}`);
        await page.waitForSelector('form.schema-editor tbody tr', WAIT);
        const row = await page.$$eval('form.schema-editor input[name=field-name]', (els) => els.map((e) => e.value).indexOf('title'));
        await choose(`form.schema-editor tbody tr:nth-child(${row + 1}) select[name=field-type]`, 'integer');
        await click('form.schema-editor button[type=submit]');
        await see('.error .error-meta', 'HTTP 409');
        await see('.error .error-message', 'field title');
    });
    await step('a field is renamed (the rename map) and the records keep its values', async () => {
        await go(`#/data/crm/${RES}`);
        await go(`#/schema/crm/${RES}`);
        await page.waitForSelector('form.schema-editor tbody tr', WAIT);
        const row = await page.$$eval('form.schema-editor input[name=field-name]', (els) => els.map((e) => e.value).indexOf('prio'));
        await type(`form.schema-editor tbody tr:nth-child(${row + 1}) input[name=field-name]`, 'priority');
        await click('form.schema-editor button[type=submit]');
        await see('.notice', 'version 2');
        await go(`#/data/crm/${RES}`);
        await see('.records th', 'priority');
        await see('.records td', 'made in the browser');
    });

    await step('the audit trail shows the schema changes', async () => {
        await click('nav a[href="#/audit"]');
        await see('main td', 'schema.put');
    });
    await step('the fleet page shows the process table', async () => {
        await click('nav a[href="#/fleet"]');
        await see('main td', 'api');
        await see('main td', 'projector');
        await see('main .facts-line', 'master pid');
        assert(requests.some((r) => r.method === 'GET' && new URL(r.url).pathname === '/v1/admin/fleet'), 'GET /v1/admin/fleet');
    });

    await step('a test API key is made on the keys page, its secret shown once', async () => {
        await click('nav a[href="#/keys"]');
        await see('main h1', 'test mode');
        await type('form.key-create input[name=name]', 'ci-test');
        await click('form.key-create button[type=submit]');
        await page.waitForSelector('.secret .secret-value', WAIT);
        const key = await page.$eval('.secret .secret-value', (e) => e.value);
        assert(key.startsWith('tk_test_'), `a test key: ${key.slice(0, 12)}`);
    });
    let switchedAt;
    await step('the switch to live mode: banner, the API\'s mode, every call with Tessera-Mode: live', async () => {
        switchedAt = requests.length;
        await click('header button[name=mode-live]');
        await see('#mode-banner', 'LIVE MODE');
        await page.waitForSelector('header button[name=mode-live][aria-pressed="true"]', WAIT);
        await click('nav a[href="#/org"]');
        await see('.mode-now', 'live');
        const api = requests.slice(switchedAt).filter((r) => !new URL(r.url).pathname.startsWith('/console/'));
        assert(api.length > 0 && api.every((r) => r.mode === 'live'), `modes after the switch: ${api.map((r) => r.mode)}`);
    });
    await step('live mode has its own keys and resources: a live key, no test resource', async () => {
        await click('nav a[href="#/keys"]');
        await see('main h1', 'live mode');
        await see('main p.empty', 'No live keys');
        await type('form.key-create input[name=name]', 'ci-live');
        await click('form.key-create button[type=submit]');
        await page.waitForSelector('.secret .secret-value', WAIT);
        const key = await page.$eval('.secret .secret-value', (e) => e.value);
        assert(key.startsWith('tk_live_'), `a live key: ${key.slice(0, 12)}`);
        await go('#/data/crm');
        await page.waitForSelector('form.new-resource', WAIT);
        const listed = await page.$$eval('main td a', (as) => as.map((a) => a.textContent));
        assert(!listed.includes(RES), `crm in live mode lists ${listed}`);
    });
    await step('back to test mode: the resource is there again', async () => {
        await click('header button[name=mode-test]');
        await see('#mode-banner', 'Test mode');
        await go('#/data/crm');
        await see('main td a', RES);
        const after = requests.slice(switchedAt).filter((r) => !new URL(r.url).pathname.startsWith('/console/'));
        assert(after.at(-1).mode === 'test', 'the last call was in test mode');
    });
    await step('log out: the login form, the session gone from sessionStorage', async () => {
        await click('header button[name=logout]');
        await page.waitForSelector('form.login', WAIT);
        await see('.notice', 'Logged out');
        const s = await page.evaluate(() => sessionStorage.length + localStorage.length);
        assert(s === 0, `storage holds ${s} item(s)`);
        assert(requests.some((r) => r.method === 'POST' && r.url.endsWith('/v1/auth/logout')), 'POST /v1/auth/logout');
    });

    await step('a viewer sees the records but is refused a create: the 403 in the UI', async () => {
        await login(VIEWER);
        assert(await page.$('nav a[href="#/fleet"]') === null, 'no fleet link for a non-admin');
        await go(`#/data/crm/${RES}`);
        await see('.records td', 'made in the browser');
        await click('button[name=new-record]');
        await type('form.record-edit input[name=rec-title]', 'viewer was here');
        await click('form.record-edit button[type=submit]');
        await see('.error .error-meta', 'HTTP 403');
        await see('.error .error-message', 'Not allowed');
    });
    await step('a viewer opening the fleet page by its address is told it is for platform admins', async () => {
        await go('#/fleet');
        await see('main h1', 'Platform admins only');
    });
    await step('an invite is for its email only: the viewer pasting Bob\'s is refused, the API\'s 403 shown', async () => {
        await click('nav a[href="#/join"]');
        await type('form.accept-invite input[name=invite_token]', inviteToken);
        await click('form.accept-invite button[type=submit]');
        await apiErrorShown(403, 'POST', /^\/v1\/auth\/invites\/accept$/);
        await see('header.top .org-name', 'Acme Corp');
        await click('header button[name=logout]');
        await page.waitForSelector('form.login', WAIT);
    });
    await step('Bob (an account of Globex) logs in, accepts the invite in the UI and is switched to Acme Corp', async () => {
        await login(BOB);
        await see('header.top .org-name', 'Globex');
        const before = await page.evaluate(() => JSON.parse(sessionStorage.getItem('tessera.console.session')).access);
        const from = requests.length;
        await click('nav a[href="#/join"]');
        await see('main h1', 'Accept an invite');
        await type('form.accept-invite input[name=invite_token]', inviteToken);
        await click('form.accept-invite button[type=submit]');
        await see('#flash .notice', 'You joined Acme Corp');
        await see('header.top .org-name', 'Acme Corp');
        await see('header.top .role', ROLE);
        await see('main h1', 'Acme Corp');
        const after = await page.evaluate(() => JSON.parse(sessionStorage.getItem('tessera.console.session')).access);
        assert(after && after !== before, 'the session holds the new org\'s token');
        const calls = requests.slice(from).filter((r) => r.method === 'POST').map((r) => new URL(r.url).pathname);
        assert(JSON.stringify(calls) === JSON.stringify(['/v1/auth/invites/accept', '/v1/auth/logout']),
            `accept, then the Globex session logged out: ${calls}`);
    });
    await step('in Acme, Bob holds the edited role: he reads crm\'s records', async () => {
        await click('nav a[href="#/members"]');
        await page.waitForSelector('.members-list select[name=role]', WAIT);
        const roles = await page.$$eval('.members-list select[name=role]', (sels) => sels.map((x) => x.value));
        assert(roles.includes(ROLE), `Acme's members' roles: ${roles}`);
        await go(`#/data/crm/${RES}`);
        await see('.records td', 'made in the browser');
    });
    await step('the invite is spent: pasting it again is refused with the API\'s message', async () => {
        await click('nav a[href="#/join"]');
        await type('form.accept-invite input[name=invite_token]', inviteToken);
        await click('form.accept-invite button[type=submit]');
        await apiErrorShown(400, 'POST', /^\/v1\/auth\/invites\/accept$/);
    });

    await step('every request the page made went to this origin: a console file or a path of /openapi.json', async () => {
        const bad = requests.map((r) => [r, offense(templates, r.method, r.url)]).filter(([, why]) => why);
        assert(requests.length > 20, `requests recorded: ${requests.length}`);
        assert(bad.length === 0, bad.map(([r, why]) => `${r.method} ${r.url}: ${why}`).join('; '));
    });
    await step('every API call carried the bearer token but login and refresh', async () => {
        const anon = requests.filter((r) => {
            const p = new URL(r.url).pathname;
            return !p.startsWith('/console/') && !r.auth && p !== '/v1/auth/login' && p !== '/v1/auth/refresh';
        });
        assert(anon.length === 0, anon.map((r) => r.url).join(', '));
    });
    await step('no CSP violation or script error in the page\'s console', async () => {
        // the browser logs each 4xx answer it got (the 400, 403 and 409 above): those are expected
        const bad = consoleLog.filter((l) => /^\[(error|pageerror)\]/.test(l) && !/status of (400|403|409)\b/.test(l));
        assert(bad.length === 0, bad.join(' | '));
    });
    if (process.env.NGINX_ACCESS_LOG) {
        await step('nginx\'s access log agrees: the browser asked for console files and API paths only', async () => {
            const lines = fs.readFileSync(process.env.NGINX_ACCESS_LOG, 'utf8').split('\n').filter((l) => /Chrome/.test(l));
            assert(lines.length >= requests.length / 2, `${lines.length} browser lines in the access log`);
            const bad = [];
            for (const l of lines) {
                const m = /"([A-Z]+) (\S+)"/.exec(l);
                const why = m ? offense(templates, m[1], ORIGIN + m[2]) : 'unparsed line';
                if (why) bad.push(`${l}: ${why}`);
            }
            assert(bad.length === 0, bad.join('; '));
        });
    }
}

main().then(
    () => process.exit(failed ? 1 : 0),
    async (err) => {
        if (!(err instanceof Stop)) await notOk('the console test ran to its end', err);
        process.exit(1);
    });
