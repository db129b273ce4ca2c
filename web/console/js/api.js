// The one way the console talks to tessera: the public HTTP API of this same
// origin, with the signed-in user's own bearer token and the chosen mode.
//
// Every call returns {status, data, etag} or throws an ApiError carrying the
// error envelope (DESIGN §5: code, message, details, request id), so a view
// has one thing to show whatever went wrong: the API's own words, a network
// failure, or an answer that is not JSON. An expired access token is renewed
// once with the refresh token (one refresh at a time for all callers) and the
// call repeated; a session that cannot be renewed is cleared, which sends the
// console back to its login form.

import * as session from './session.js';

const TIMEOUT_MS = 30000;

export class ApiError extends Error {
    constructor(status, code, message, details = null, requestId = null) {
        super(message);
        this.name = 'ApiError';
        this.status = status;      // HTTP status, 0 when no answer came
        this.code = code;          // the envelope's code, or the console's own
        this.details = details;    // the envelope's details (422: field → reason)
        this.requestId = requestId;
    }
}

/**
 * A path with each interpolated value percent-encoded as one segment:
 * path`/v1/svc/${s}/${r}` can never be steered to another endpoint by a name.
 */
export function path(strings, ...values) {
    return strings.reduce((out, s, i) => out + s + (i < values.length ? encodeURIComponent(String(values[i])) : ''), '');
}

let refreshing = null;

/**
 * request(method, path, {body, query, ifMatch, auth}) → {status, data, etag}.
 * query: URLSearchParams or an object of strings; body: JSON-able; auth: send
 * the token (default true). Throws ApiError.
 */
export async function request(method, url, opts = {}) {
    const first = await send(method, url, opts);
    if (first.ok) return first.value;
    const err = first.error;
    // the access token ran out (15 min): renew once, then ask again
    if (opts.auth !== false && err.status === 401 && err.code === 'token_expired' && session.current().refresh) {
        await renew();
        const again = await send(method, url, opts);
        if (again.ok) return again.value;
        throw signOutOn401(again.error);
    }
    throw signOutOn401(err, opts);
}

// A token the API no longer takes (revoked by a logout elsewhere, expired past
// renewal, signed by a retired key) ends the session; the login form says why.
function signOutOn401(err, opts = {}) {
    if (opts.auth !== false && err.status === 401 && session.signedIn()) session.clear();
    return err;
}

function renew() {
    if (refreshing === null) {
        const refreshToken = session.current().refresh;
        refreshing = send('POST', '/v1/auth/refresh', { body: { refresh_token: refreshToken }, auth: false })
            .then((r) => {
                if (!r.ok) throw r.error;
                session.setTokens(r.value.data.access_token, r.value.data.refresh_token);
            })
            .catch((e) => {
                session.clear();
                throw e;
            })
            .finally(() => {
                refreshing = null;
            });
    }
    return refreshing;
}

// One round trip; never throws: {ok: true, value} or {ok: false, error}.
async function send(method, url, { body, query, ifMatch, auth = true } = {}) {
    const s = session.current();
    const headers = { Accept: 'application/json', 'Tessera-Mode': s.mode };
    if (auth && s.access) headers.Authorization = `Bearer ${s.access}`;
    if (body !== undefined) headers['Content-Type'] = 'application/json';
    if (ifMatch !== undefined && ifMatch !== null) headers['If-Match'] = `"${ifMatch}"`;
    if (query) {
        const q = query instanceof URLSearchParams ? query : new URLSearchParams(query);
        const text = q.toString();
        if (text) url += (url.includes('?') ? '&' : '?') + text;
    }
    const abort = new AbortController();
    const timer = setTimeout(() => abort.abort(), TIMEOUT_MS);
    let res, text;
    try {
        res = await fetch(url, {
            method,
            headers,
            body: body === undefined ? undefined : JSON.stringify(body),
            cache: 'no-store',
            credentials: 'omit',      // the token is the credential, never a cookie
            redirect: 'error',        // the API never redirects; following one could leave the origin
            referrerPolicy: 'no-referrer',
            signal: abort.signal,
        });
        text = await res.text();
    } catch (e) {
        const why = e.name === 'AbortError' ? `no answer within ${TIMEOUT_MS / 1000} s` : 'the API could not be reached';
        return { ok: false, error: new ApiError(0, 'network_error', `${method} ${url.split('?')[0]}: ${why}`) };
    } finally {
        clearTimeout(timer);
    }
    let data = null;
    if (text !== '') {
        try {
            data = JSON.parse(text);
        } catch {
            return {
                ok: false,
                error: new ApiError(res.status, 'bad_response',
                    `${method} ${url.split('?')[0]} answered HTTP ${res.status} without JSON`),
            };
        }
    }
    if (res.ok) return { ok: true, value: { status: res.status, data, etag: parseEtag(res.headers.get('ETag')) } };
    const env = data && typeof data.error === 'object' && data.error !== null ? data.error : null;
    if (env === null)
        return { ok: false, error: new ApiError(res.status, `http_${res.status}`, `HTTP ${res.status} ${res.statusText}`) };
    return {
        ok: false,
        error: new ApiError(res.status, String(env.code ?? `http_${res.status}`), String(env.message ?? `HTTP ${res.status}`),
            env.details ?? null, env.request_id ?? res.headers.get('X-Request-Id')),
    };
}

// A record's ETag is its version, quoted ("3"): the value If-Match takes back.
function parseEtag(v) {
    if (v === null) return null;
    const m = /^(?:W\/)?"?([^"]*)"?$/.exec(v);
    return m ? m[1] : null;
}

export const get = (url, opts) => request('GET', url, opts);
export const post = (url, body, opts = {}) => request('POST', url, { ...opts, body });
export const put = (url, body, opts = {}) => request('PUT', url, { ...opts, body });
export const patch = (url, body, opts = {}) => request('PATCH', url, { ...opts, body });
export const del = (url, opts) => request('DELETE', url, opts);
