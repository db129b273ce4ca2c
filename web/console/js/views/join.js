// Accept an invite to another organization, signed in as the person it names
// (POST /v1/auth/invites/accept with this session's own token). The answer is
// a token pair for the organization joined; ctx.switchSession closes this
// session and carries on in that one, so the console shows what was joined.
// An invite for someone new is redeemed at signup instead, outside the console.

import * as api from '../api.js';
import { h, fill, display } from '../dom.js';
import { messages, onSubmit, heading } from '../ui.js';

export function renderJoin(root, ctx) {
    const msgs = messages();
    const here = ctx.me.org ? ctx.me.org.name : 'this organization';
    const form = h('form', { class: 'accept-invite' },
        h('label', { class: 'field' }, h('span', { class: 'label', text: 'Invite token' }),
            h('input', { type: 'text', name: 'invite_token', required: true, minlength: 10, maxlength: 128,
                autocomplete: 'off', spellcheck: 'false', class: 'code', size: 44 }),
            h('span', { class: 'hint', text: 'The token an admin of the other organization gave you.' })),
        h('button', { type: 'submit', class: 'primary', text: 'Accept and switch' }));
    onSubmit(form, msgs, async () => {
        const res = await api.post('/v1/auth/invites/accept', { invite_token: form.elements.invite_token.value.trim() });
        const pair = res.data;
        form.reset();
        const org = pair.org ? pair.org.name : 'the organization';
        await ctx.switchSession(pair, `You joined ${org} as ${display(pair.role)}; the console is now in ${org}.` +
            (ctx.me.org && ctx.me.org.slug ? ` To go back to ${here}, log in with organization ${ctx.me.org.slug}.` : ''));
    });
    fill(root,
        heading('Accept an invite', `You are signed in to ${here} as ${display(ctx.me.user ? ctx.me.user.email : null)}.`),
        h('p', { text: 'An invite names one email address: yours. Accepting it makes you a member of its organization ' +
            `in the role it gives, and switches this console there (the session in ${here} is logged out; ` +
            'your membership in it stays).' }),
        form, msgs.el);
}
