// Members of the organization: list, change a role (PATCH), remove (DELETE),
// invite (POST {email, role} → a one-time invite token for that email only,
// shown once). Who may do what is the API's call (members:manage, and no
// granting above one's own role): the console shows its 403 rather than
// guessing. The invitee redeems the token by signing up, or, with an account,
// on the console's "Accept an invite" page (views/join.js).

import * as api from '../api.js';
import { h, fill, table, when, select, field, display } from '../dom.js';
import { messages, action, onSubmit, secretBox, confirmed, heading } from '../ui.js';

export async function renderMembers(root, ctx) {
    const msgs = messages();
    const list = h('div', { class: 'members-list' });
    const invited = h('div');
    fill(root, heading('Members', 'People in this organization and their roles.'), msgs.el, list,
        h('h2', { text: 'Invite' }), inviteForm(msgs, invited, []), invited);

    async function load() {
        const [members, roles] = await Promise.all([api.get('/v1/orgs/current/members'), roleNames()]);
        if (!ctx.live()) return;
        fill(list, table([
            { label: 'Email', cell: (m) => m.email ?? m.user_id },
            { label: 'Role', cell: (m) => roleControl(m, roles) },
            { label: 'Joined', cell: (m) => when(m.created_at) },
            { label: '', cell: (m) => action('Remove', msgs, () => remove(m), { kind: 'danger', name: 'remove-member' }) },
        ], members.data.data ?? [], { empty: 'No members.' }));
        // the invite form offers the same roles
        const form = root.querySelector('form.invite');
        form.replaceWith(inviteForm(msgs, invited, roles));
    }

    function roleControl(m, roles) {
        const sel = select('role', roles.includes(m.role) ? roles : [m.role, ...roles], m.role);
        sel.setAttribute('aria-label', `Role of ${m.email ?? m.user_id}`);
        sel.addEventListener('change', async () => {
            msgs.clear();
            sel.disabled = true;
            try {
                await api.patch(api.path`/v1/orgs/current/members/${m.user_id}`, { role: sel.value });
                msgs.say(`${m.email ?? m.user_id} is now ${sel.value}.`);
                m.role = sel.value;
            } catch (err) {
                sel.value = m.role;   // the select shows what the API holds
                msgs.fail(err);
            } finally {
                sel.disabled = false;
            }
        });
        return sel;
    }

    async function remove(m) {
        if (!confirmed(`Remove ${m.email ?? m.user_id} from the organization?`)) return;
        await api.del(api.path`/v1/orgs/current/members/${m.user_id}`);
        msgs.say(`${m.email ?? m.user_id} was removed.`);
        await load();
    }

    await load();
}

async function roleNames() {
    const res = await api.get('/v1/roles');
    return (res.data.data ?? []).map((r) => r.name);
}

function inviteForm(msgs, out, roles) {
    const form = h('form', { class: 'invite inline' },
        field('Email', h('input', { type: 'email', name: 'email', required: true, maxlength: 254, autocomplete: 'off', size: 28 })),
        field('Role', select('role', roles.length ? roles : ['member'], 'member')),
        h('button', { type: 'submit', class: 'primary', text: 'Create invite' }));
    return onSubmit(form, msgs, async () => {
        const email = form.elements.email.value.trim();
        const res = await api.post('/v1/orgs/current/members', { email, role: form.elements.role.value });
        const inv = res.data;
        form.elements.email.value = '';
        fill(out, secretBox(`Invite token for ${display(inv.email)} (role ${display(inv.role)}, until ${when(inv.expires_at)})`,
            inv.invite_token,
            `Shown once; only ${display(inv.email)} can use it. Someone new signs up with it ` +
            '(POST /v1/auth/signup with email, password and invite_token); someone with an account logs in ' +
            'and pastes it on this console\'s “Accept an invite” page.'));
    });
}
