// What every view shows the same way: an API error with its envelope, a
// notice, a secret shown once, and buttons that run an API call (disabled
// while it runs, its failure shown next to it, never swallowed).

import { h, fill } from './dom.js';
import { ApiError } from './api.js';

/** An error as a block: the envelope's message, its details, status and request id. */
export function errorBox(err) {
    const api = err instanceof ApiError;
    const details = api && err.details && typeof err.details === 'object' ? Object.entries(err.details) : [];
    const meta = api
        ? [err.status ? `HTTP ${err.status}` : null, err.code, err.requestId ? `request ${err.requestId}` : null]
        : [err && err.name ? err.name : 'Error'];
    return h('div', { class: 'error', role: 'alert' },
        h('p', { class: 'error-message', text: messageOf(err) }),
        details.length
            ? h('ul', { class: 'error-details' }, details.map(([k, v]) => h('li', {}, h('code', { text: k }), ': ', String(v))))
            : null,
        h('p', { class: 'error-meta', text: meta.filter(Boolean).join(' · ') }));
}

function messageOf(err) {
    if (err instanceof ApiError) {
        if (err.status === 403) return `Not allowed: ${err.message}`;
        return err.message;
    }
    return err && err.message ? err.message : String(err);
}

/** A message area: say(text), fail(err), clear(). */
export function messages() {
    const el = h('div', { class: 'messages', 'aria-live': 'polite' });
    return {
        el,
        say: (text) => fill(el, h('p', { class: 'notice', text })),
        fail: (err) => fill(el, errorBox(err)),
        clear: () => fill(el),
    };
}

/**
 * A button that runs fn (async); while it runs the button is disabled; a
 * throw goes to msgs.fail. Returns the button.
 */
export function action(label, msgs, fn, { kind = '', name, type = 'button' } = {}) {
    const b = h('button', { type, class: kind, name, text: label });
    b.addEventListener('click', (ev) => {
        ev.preventDefault();
        run(b, msgs, fn);
    });
    return b;
}

/** Wires a form's submit to fn(form) with the same handling as action(). */
export function onSubmit(form, msgs, fn) {
    form.addEventListener('submit', (ev) => {
        ev.preventDefault();
        run(form.querySelector('button[type=submit]'), msgs, () => fn(form));
    });
    return form;
}

async function run(button, msgs, fn) {
    if (button) button.disabled = true;
    msgs.clear();
    try {
        await fn();
    } catch (err) {
        msgs.fail(err);
    } finally {
        if (button) button.disabled = false;
    }
}

/** A secret the API shows exactly once (an API key, an invite token). */
export function secretBox(title, secret, note) {
    const msgs = messages();
    const value = h('input', { type: 'text', class: 'secret-value', readonly: true, value: secret, 'aria-label': title });
    value.addEventListener('focus', () => value.select());
    return h('div', { class: 'secret', role: 'status' },
        h('p', { class: 'secret-title', text: title }),
        value,
        action('Copy', msgs, async () => {
            if (!navigator.clipboard) throw new Error('the clipboard is not available here: select the text and copy it');
            await navigator.clipboard.writeText(secret);
            msgs.say('Copied.');
        }),
        h('p', { class: 'hint', text: note ?? 'Shown once: the API keeps only a hash of it. Copy it now.' }),
        msgs.el);
}

/** Confirms a destructive step. */
export function confirmed(question) {
    return window.confirm(question);
}

/** A page heading with an optional line under it. */
export function heading(title, sub) {
    return [h('h1', { text: title }), sub ? h('p', { class: 'sub', text: sub }) : null];
}
