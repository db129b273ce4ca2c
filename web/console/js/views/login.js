// Sign in with email and password (POST /v1/auth/login). The token pair goes
// to session.js (sessionStorage); the password is never stored.

import * as api from '../api.js';
import * as session from '../session.js';
import { h } from '../dom.js';
import { messages, onSubmit } from '../ui.js';

export function renderLogin({ notice, onSignedIn }) {
    const msgs = messages();
    if (notice) msgs.say(notice);
    const form = h('form', { class: 'login', autocomplete: 'on' },
        h('h1', { text: 'tessera console' }),
        h('label', { class: 'field' }, h('span', { class: 'label', text: 'Email' }),
            h('input', { type: 'email', name: 'email', required: true, autocomplete: 'username' })),
        h('label', { class: 'field' }, h('span', { class: 'label', text: 'Password' }),
            h('input', { type: 'password', name: 'password', required: true, autocomplete: 'current-password' })),
        h('label', { class: 'field' }, h('span', { class: 'label', text: 'Organization (optional)' }),
            h('input', { type: 'text', name: 'org', autocomplete: 'organization' }),
            h('span', { class: 'hint', text: 'Its slug or id, when you belong to several.' })),
        h('button', { type: 'submit', class: 'primary', text: 'Log in' }),
        msgs.el);
    onSubmit(form, msgs, async () => {
        const email = form.elements.email.value.trim();
        const password = form.elements.password.value;
        const org = form.elements.org.value.trim();
        const res = await api.post('/v1/auth/login', org ? { email, password, org } : { email, password }, { auth: false });
        form.elements.password.value = '';
        session.setTokens(res.data.access_token, res.data.refresh_token);
        await onSignedIn();
    });
    return h('div', { class: 'login-page' }, form);
}
