// Roles: the built-ins (read-only, the same in every organization) and the
// organization's own. Create with POST /v1/roles (a taken name is the API's
// 409); Edit starts from the role as it is now (GET /v1/roles/{name}) and
// saves the whole new list with PATCH; Delete is DELETE /v1/roles/{name},
// which the API refuses with 409 while a member, a live API key or an open
// invite holds the role: its message, shown as it comes, says what to do.

import * as api from '../api.js';
import { h, fill, table } from '../dom.js';
import { messages, action, onSubmit, confirmed, heading } from '../ui.js';

const PERM_HINT = 'One per line or separated by spaces: action:object, e.g. records:read:crm/* (actions: ' +
    'records:read, records:write, records:delete, members:manage, roles:manage, keys:manage, audit:read, *).';

function parsePerms(text) {
    return text.split(/[\s,]+/).map((s) => s.trim()).filter(Boolean);
}

function permList(perms) {
    return h('ul', { class: 'perms' }, (perms ?? []).map((p) => h('li', {}, h('code', { text: p }))));
}

export async function renderRoles(root, ctx) {
    const msgs = messages();
    const list = h('div');
    const createForm = h('form', { class: 'role-create' },
        h('label', { class: 'field' }, h('span', { class: 'label', text: 'Name' }),
            h('input', { type: 'text', name: 'name', required: true, maxlength: 31, pattern: '[a-z][a-z0-9_]*' }),
            h('span', { class: 'hint', text: 'Lower-case letters, digits and _, starting with a letter.' })),
        h('label', { class: 'field' }, h('span', { class: 'label', text: 'Permissions' }),
            h('textarea', { name: 'permissions', rows: 3, required: true }), h('span', { class: 'hint', text: PERM_HINT })),
        h('button', { type: 'submit', class: 'primary', text: 'Create role' }));
    onSubmit(createForm, msgs, async () => {
        const name = createForm.elements.name.value.trim();
        await api.post('/v1/roles', { name, permissions: parsePerms(createForm.elements.permissions.value) });
        createForm.reset();
        msgs.say(`Role ${name} created.`);
        await load();
    });
    fill(root, heading('Roles', 'What each role may do. Built-in roles are the platform\'s and cannot be changed.'),
        msgs.el, list, h('h2', { text: 'New role' }), createForm);

    async function load() {
        const res = await api.get('/v1/roles');
        if (!ctx.live()) return;
        fill(list, table([
            { label: 'Name', cell: (r) => h('code', { text: r.name }) },
            { label: 'Kind', cell: (r) => (r.builtin ? 'built-in' : 'this organization\'s') },
            { label: 'Permissions', cell: (r) => permList(r.permissions) },
            { label: '', cell: (r) => (r.builtin ? h('span', { class: 'muted', text: 'read-only' }) : editControls(r)) },
        ], res.data.data ?? []));
    }

    function editControls(role) {
        const box = h('div', { class: 'role-edit', 'data-role': role.name });
        const edit = action('Edit', msgs, async () => {
            // the list may be stale: edit what the API holds now
            const now = (await api.get(api.path`/v1/roles/${role.name}`)).data;
            const area = h('textarea', { name: 'permissions', rows: 3, value: (now.permissions ?? []).join('\n'),
                'aria-label': `Permissions of ${role.name}` });
            const form = h('form', { class: 'role-update' }, area,
                h('button', { type: 'submit', class: 'primary', text: 'Save' }),
                action('Cancel', msgs, async () => fill(box, edit, del), { name: 'cancel' }));
            onSubmit(form, msgs, async () => {
                const saved = (await api.patch(api.path`/v1/roles/${role.name}`, { permissions: parsePerms(area.value) })).data;
                msgs.say(`Role ${saved.name} saved: ${(saved.permissions ?? []).join(' ')}.`);
                await load();
            });
            fill(box, form);
            area.focus();
        }, { name: 'edit-role' });
        const del = action('Delete', msgs, async () => {
            if (!confirmed(`Delete role ${role.name}?`)) return;
            await api.del(api.path`/v1/roles/${role.name}`);
            msgs.say(`Role ${role.name} deleted.`);
            await load();
        }, { kind: 'danger', name: 'delete-role' });
        return fill(box, edit, del);
    }

    await load();
}
