// web/console/js/api.js and session.js under Node, with fetch and the
// browser's storage replaced by fakes: what the browser test cannot reach in
// a short run (an access token that expires: one refresh shared by
// concurrent calls, then the call again; a refresh refused: signed out), and
// the client's contract (headers, the error envelope, a network failure, an
// answer without JSON, path encoding, no localStorage ever), and dom.js's
// when(), which shows the API's RFC 3339 times.
//   node console-api-test.js        prints ok / not ok lines; exits 1 on a failure
'use strict';

const path = require('path');
const { pathToFileURL } = require('url');

const store = new Map();
globalThis.window = {
    sessionStorage: {
        getItem: (k) => (store.has(k) ? store.get(k) : null),
        setItem: (k, v) => store.set(k, String(v)),
        removeItem: (k) => store.delete(k),
    },
    get localStorage() {
        throw new Error('localStorage was touched');
    },
};

let handler = null;          // (method, url, headers, body) → {status, body, headers?} | 'network'
const calls = [];
globalThis.fetch = async (url, init) => {
    const call = { method: init.method, url, headers: init.headers, body: init.body ? JSON.parse(init.body) : undefined };
    calls.push(call);
    const r = await handler(call);
    if (r === 'network') throw new TypeError('Failed to fetch');
    const text = typeof r.body === 'string' ? r.body : r.body === undefined ? '' : JSON.stringify(r.body);
    const headers = new Map(Object.entries(r.headers ?? {}).map(([k, v]) => [k.toLowerCase(), v]));
    return {
        ok: r.status >= 200 && r.status < 300, status: r.status, statusText: 'X',
        headers: { get: (k) => headers.get(k.toLowerCase()) ?? null },
        text: async () => text,
    };
};

let failed = 0;
async function test(name, fn, mod = 'api.js') {
    calls.length = 0;
    try {
        await fn();
        console.log(`ok - ${mod}: ${name}`);
    } catch (err) {
        failed++;
        console.log(`not ok - ${mod}: ${name}`);
        console.log(`#   ${String(err.stack || err).split('\n').slice(0, 4).join('\n#   ')}`);
    }
}
function eq(got, want, what) {
    if (JSON.stringify(got) !== JSON.stringify(want)) throw new Error(`${what}: got ${JSON.stringify(got)}, wanted ${JSON.stringify(want)}`);
}
const envelope = (status, code, message, details) =>
    ({ status, body: { error: { code, message, request_id: 'rid-1', ...(details ? { details } : {}) } } });

(async () => {
    const dir = path.join(__dirname, '../../web/console/js');
    const api = await import(pathToFileURL(path.join(dir, 'api.js')));
    const session = await import(pathToFileURL(path.join(dir, 'session.js')));

    await test('a call sends the token, the mode, JSON and If-Match as a quoted version', async () => {
        session.setTokens('A1', 'R1');
        handler = () => ({ status: 200, body: { ok: true }, headers: { ETag: '"7"' } });
        const res = await api.patch('/v1/svc/crm/deals/x', { a: 1 }, { ifMatch: 6 });
        eq(calls[0].headers, { Accept: 'application/json', 'Tessera-Mode': 'test', Authorization: 'Bearer A1',
            'Content-Type': 'application/json', 'If-Match': '"6"' }, 'headers');
        eq(res, { status: 200, data: { ok: true }, etag: '7' }, 'answer');
    });
    await test('the mode switch changes Tessera-Mode of the next call; kept in sessionStorage only', async () => {
        session.setMode('live');
        handler = () => ({ status: 200, body: {} });
        await api.get('/v1/auth/me', { query: { limit: '2', cursor: 'a b' } });
        eq(calls[0].headers['Tessera-Mode'], 'live', 'mode');
        eq(calls[0].url, '/v1/auth/me?limit=2&cursor=a+b', 'query string');
        eq(JSON.parse(store.get('tessera.console.session')).mode, 'live', 'stored mode');
        session.setMode('test');
    });
    await test('an error answer becomes an ApiError with the envelope\'s code, message, details, request id', async () => {
        handler = () => envelope(422, 'validation_failed', 'the request has invalid fields', { role: 'is not a role' });
        try {
            await api.post('/v1/orgs/current/members', { role: 'x' });
            throw new Error('no throw');
        } catch (e) {
            eq([e.name, e.status, e.code, e.message, e.details, e.requestId],
                ['ApiError', 422, 'validation_failed', 'the request has invalid fields', { role: 'is not a role' }, 'rid-1'], 'error');
        }
    });
    await test('an answer without JSON and a network failure are ApiErrors too, never a blank', async () => {
        handler = () => ({ status: 502, body: '<html>bad gateway</html>' });
        const e1 = await api.get('/v1/roles').catch((e) => e);
        eq([e1.status, e1.code], [502, 'bad_response'], 'non-JSON');
        handler = () => 'network';
        const e2 = await api.get('/v1/roles').catch((e) => e);
        eq([e2.status, e2.code], [0, 'network_error'], 'network');
        eq(session.signedIn(), true, 'still signed in');
    });
    await test('token_expired: one refresh for two concurrent calls, both asked again with the new token', async () => {
        session.setTokens('OLD', 'R1');
        let refreshes = 0;
        handler = async (c) => {
            if (c.url === '/v1/auth/refresh') {
                refreshes++;
                await new Promise((r) => setTimeout(r, 20));
                eq(c.body, { refresh_token: 'R1' }, 'refresh body');
                eq(c.headers.Authorization, undefined, 'no bearer on refresh');
                return { status: 200, body: { access_token: 'NEW', refresh_token: 'R2' } };
            }
            return c.headers.Authorization === 'Bearer NEW' ? { status: 200, body: { url: c.url } }
                : envelope(401, 'token_expired', 'the token has expired');
        };
        const [a, b] = await Promise.all([api.get('/v1/orgs/current'), api.get('/v1/roles')]);
        eq([a.data.url, b.data.url, refreshes], ['/v1/orgs/current', '/v1/roles', 1], 'answers and refreshes');
        eq([session.current().access, session.current().refresh], ['NEW', 'R2'], 'stored pair');
    });
    await test('a refused refresh signs out: the tokens are forgotten', async () => {
        session.setTokens('OLD', 'R9');
        handler = (c) => (c.url === '/v1/auth/refresh' ? envelope(401, 'unauthorized', 'refresh token revoked')
            : envelope(401, 'token_expired', 'the token has expired'));
        const e = await api.get('/v1/orgs/current').catch((x) => x);
        eq([e.status, session.signedIn(), store.has('tessera.console.session')], [401, false, false], 'signed out');
    });
    await test('a revoked token (401 token_revoked) signs out without a refresh', async () => {
        session.setTokens('T', 'R');
        handler = () => envelope(401, 'token_revoked', 'the token was revoked');
        await api.get('/v1/auth/me').catch(() => {});
        eq([calls.length, session.signedIn()], [1, false], 'one call, signed out');
    });
    await test('a 403 keeps the session (the user is just not allowed)', async () => {
        session.setTokens('T', 'R');
        handler = () => envelope(403, 'forbidden', 'your role does not allow records:write');
        const e = await api.post('/v1/svc/crm/deals', {}).catch((x) => x);
        eq([e.status, e.code, session.signedIn()], [403, 'forbidden', true], '403');
    });
    await test('path`…` encodes each value as one segment', async () => {
        eq(api.path`/v1/svc/${'crm'}/${'a/../b?c'}`, '/v1/svc/crm/a%2F..%2Fb%3Fc', 'path');
    });

    const dom = await import(pathToFileURL(path.join(dir, 'dom.js')));
    await test('when() shows the API\'s RFC 3339 text in UTC; what is no time is shown as it is', async () => {
        eq(dom.when('2026-12-07T15:31:52Z'), '2026-12-07 15:31:52 UTC', 'UTC');
        eq(dom.when('2026-12-07T16:31:52+01:00'), '2026-12-07 15:31:52 UTC', 'an offset folded into UTC');
        eq(dom.when('2027-01-01T00:30:00.5-01:00'), '2027-01-01 01:30:00 UTC', 'a fraction dropped');
        eq([dom.when(null), dom.when(undefined), dom.when('soon'), dom.when(1767225600)],
            ['—', '—', 'soon', '1767225600'], 'not times');
    }, 'dom.js');
    process.exit(failed ? 1 : 0);
})().catch((e) => {
    console.log(`not ok - api.js tests ran (${e.message})`);
    process.exit(1);
});
