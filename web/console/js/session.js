// The signed-in session: the token pair and the mode (test | live).
//
// Kept in sessionStorage, which belongs to this tab alone and goes when the tab
// closes: a reload keeps the user signed in, another tab or a later visit does
// not see the token. Never localStorage, which every tab and every future page
// of the origin can read for as long as the browser keeps it. When storage is
// refused (a privacy setting), the session lives in memory only.

const KEY = 'tessera.console.session';
const EMPTY = Object.freeze({ access: null, refresh: null, mode: 'test' });

let state = load();
const listeners = new Set();

function load() {
    try {
        const raw = window.sessionStorage.getItem(KEY);
        if (raw === null) return EMPTY;
        const s = JSON.parse(raw);
        return Object.freeze({
            access: typeof s.access === 'string' ? s.access : null,
            refresh: typeof s.refresh === 'string' ? s.refresh : null,
            mode: s.mode === 'live' ? 'live' : 'test',
        });
    } catch {
        return EMPTY;
    }
}

function save(next) {
    const prev = state;
    state = Object.freeze(next);
    try {
        if (state.access === null && state.refresh === null && state.mode === 'test')
            window.sessionStorage.removeItem(KEY);
        else
            window.sessionStorage.setItem(KEY, JSON.stringify(state));
    } catch {
        // storage refused: the session stays in memory for this page's life
    }
    for (const fn of listeners) fn(state, prev);
}

/** The current session: {access, refresh, mode}; frozen. */
export function current() {
    return state;
}

export function signedIn() {
    return state.access !== null;
}

/** Stores a token pair from login or refresh. */
export function setTokens(access, refresh) {
    save({ ...state, access, refresh: refresh ?? state.refresh });
}

/** Switches the mode every later request carries (Tessera-Mode). */
export function setMode(mode) {
    if (mode !== 'test' && mode !== 'live') throw new Error(`unknown mode ${mode}`);
    save({ ...state, mode });
}

/** Forgets the tokens (logout, a revoked or expired session); back to test mode. */
export function clear() {
    save(EMPTY);
}

/** fn(next, prev) after every change; returns the unsubscribe function. */
export function onChange(fn) {
    listeners.add(fn);
    return () => listeners.delete(fn);
}
