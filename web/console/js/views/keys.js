// API keys of the current mode: a tk_test_… key only ever acts in test, a
// tk_live_… key in live, so the page lists and makes the keys of the mode the
// switch at the top shows. The secret is in the create answer only.

import * as api from '../api.js';
import { h, fill, table, when, select, field } from '../dom.js';
import { messages, action, onSubmit, secretBox, confirmed, heading } from '../ui.js';

export async function renderKeys(root, ctx) {
    const msgs = messages();
    const list = h('div');
    const created = h('div');
    const other = h('p', { class: 'hint' });
    const form = h('form', { class: 'key-create inline' },
        field('Name', h('input', { type: 'text', name: 'name', required: true, maxlength: 64 })),
        field('Role', select('role', [['', '(my role)']], '')),
        ctx.platformAdmin
            ? h('label', { class: 'check' }, h('input', { type: 'checkbox', name: 'platform' }), ' platform key (may change schemas)')
            : null,
        h('button', { type: 'submit', class: 'primary', text: `Create ${ctx.mode} key` }));
    onSubmit(form, msgs, async () => {
        const body = { name: form.elements.name.value.trim(), mode: ctx.mode };
        if (form.elements.role.value) body.role = form.elements.role.value;
        if (form.elements.platform && form.elements.platform.checked) body.platform = true;
        const res = await api.post('/v1/auth/api-keys', body);
        form.reset();
        fill(created, secretBox(`New ${res.data.mode} key “${res.data.name}”`, res.data.key));
        await load();
    });
    fill(root, heading(`API keys — ${ctx.mode} mode`,
        `Keys for programs. This page shows and makes ${ctx.mode} keys; the switch at the top changes the mode.`),
        msgs.el, list, other, h('h2', { text: `New ${ctx.mode} key` }), form, created);

    async function load() {
        const [keys, roles] = await Promise.all([api.get('/v1/auth/api-keys'), api.get('/v1/roles').catch(() => null)]);
        if (!ctx.live()) return;
        const all = keys.data.data ?? [];
        const mine = all.filter((k) => k.mode === ctx.mode);
        const elsewhere = all.length - mine.length;
        other.textContent = elsewhere ? `${elsewhere} key(s) of the other mode are not listed here.` : '';
        fill(list, table([
            { label: 'Name', cell: (k) => k.name },
            { label: 'Prefix', cell: (k) => h('code', { text: k.prefix }) },
            { label: 'Role', cell: (k) => k.role },
            { label: 'Platform', cell: (k) => (k.platform ? 'yes' : '') },
            { label: 'Created', cell: (k) => when(k.created_at) },
            { label: 'State', cell: (k) => (k.revoked_at ? `revoked ${when(k.revoked_at)}` : 'active') },
            {
                label: '', cell: (k) => (k.revoked_at ? '' : action('Revoke', msgs, async () => {
                    if (!confirmed(`Revoke key ${k.name} (${k.prefix}…)? Programs using it stop working.`)) return;
                    await api.del(api.path`/v1/auth/api-keys/${k.id}`);
                    msgs.say(`Key ${k.name} revoked.`);
                    await load();
                }, { kind: 'danger', name: 'revoke-key' })),
            },
        ], mine, { empty: `No ${ctx.mode} keys.` }));
        if (roles) {
            const names = (roles.data.data ?? []).map((r) => [r.name, r.name]);
            form.elements.role.replaceWith(select('role', [['', '(my role)'], ...names], ''));
        }
    }

    await load();
}
