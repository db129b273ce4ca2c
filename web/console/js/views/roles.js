// Roles: the built-ins (read-only) and the organization's own. Create with
// POST /v1/roles; one role's permissions are changed with PATCH
// /v1/roles/{name} and it is deleted with DELETE /v1/roles/{name}. A
// deployment without those endpoints answers 404 or 405: the console then
// says editing roles is not available there, and nothing else breaks.

import * as api from '../api.js';
import { h, fill, table } from '../dom.js';
import { messages, action, onSubmit, confirmed, heading } from '../ui.js';
import { ApiError } from '../api.js';

const PERM_HINT = 'One per line or separated by spaces: action:object, e.g. records:read:crm/* (actions: ' +
    'records:read, records:write, records:delete, members:manage, roles:manage, keys:manage, audit:read, *).';

function parsePerms(text) {
    return text.split(/[\s,]+/).map((s) => s.trim()).filter(Boolean);
}

// 404/405 from a per-role endpoint: this API predates it
function unsupported(err) {
    return err instanceof ApiError && (err.status === 405 || (err.status === 404 && err.message === 'no such endpoint'));
}

export async function renderRoles(root, ctx) {
    const msgs = messages();
    const list = h('div');
    const createForm = h('form', { class: 'role-create' },
        h('label', { class: 'field' }, h('span', { class: 'label', text: 'Name' }),
            h('input', { type: 'text', name: 'name', required: true, pattern: '[a-z][a-z0-9_\\-]*' })),
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
            { label: 'Permissions', cell: (r) => h('ul', { class: 'perms' }, (r.permissions ?? []).map((p) => h('li', {}, h('code', { text: p })))) },
            { label: '', cell: (r) => (r.builtin ? h('span', { class: 'muted', text: 'read-only' }) : editControls(r)) },
        ], res.data.data ?? []));
    }

    function editControls(role) {
        const box = h('div', { class: 'role-edit' });
        const edit = action('Edit', msgs, async () => {
            const area = h('textarea', { name: 'permissions', rows: 3, value: (role.permissions ?? []).join('\n') });
            const form = h('form', { class: 'inline' }, area,
                h('button', { type: 'submit', class: 'primary', text: 'Save' }),
                action('Cancel', msgs, async () => fill(box, edit, del)));
            onSubmit(form, msgs, async () => {
                try {
                    await api.patch(api.path`/v1/roles/${role.name}`, { permissions: parsePerms(area.value) });
                } catch (err) {
                    if (unsupported(err)) throw new Error('Changing a role is not available on this deployment yet.');
                    throw err;
                }
                msgs.say(`Role ${role.name} saved.`);
                await load();
            });
            fill(box, form);
        });
        const del = action('Delete', msgs, async () => {
            if (!confirmed(`Delete role ${role.name}?`)) return;
            try {
                await api.del(api.path`/v1/roles/${role.name}`);
            } catch (err) {
                if (unsupported(err)) throw new Error('Deleting a role is not available on this deployment yet.');
                throw err;
            }
            msgs.say(`Role ${role.name} deleted.`);
            await load();
        }, { kind: 'danger' });
        return fill(box, edit, del);
    }

    await load();
}
