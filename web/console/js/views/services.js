// Services and their resources. The API has no "list services" call: the
// console offers the registered apps of kind microservice (GET /v1/apps) and
// a box to open any service by name (a service needs no app row to be typed).

import * as api from '../api.js';
import { h, fill, table, when } from '../dom.js';
import { messages, onSubmit, heading } from '../ui.js';

const NAME = /^[a-z][a-z0-9_]{0,62}$/;

export async function renderServices(root, ctx) {
    const msgs = messages();
    const list = h('div');
    const open = h('form', { class: 'inline open-service' },
        h('label', { class: 'field' }, h('span', { class: 'label', text: 'Service' }),
            h('input', { type: 'text', name: 'service', required: true, placeholder: 'crm' })),
        h('button', { type: 'submit', text: 'Open' }));
    onSubmit(open, msgs, async () => {
        const s = open.elements.service.value.trim();
        if (!NAME.test(s)) throw new Error('A service name is lower-case letters, digits and _ (it starts with a letter).');
        location.hash = `#/data/${encodeURIComponent(s)}`;
    });
    fill(root, heading('Data', 'Services, their resources and records.'), msgs.el, list, open);
    const res = await api.get('/v1/apps');
    if (!ctx.live()) return;
    const services = (res.data.data ?? []).filter((a) => a.kind === 'microservice');
    fill(list, table([
        { label: 'Service', cell: (a) => h('a', { href: `#/data/${encodeURIComponent(a.name)}`, text: a.name }) },
        { label: 'Base URL', cell: (a) => h('code', { text: a.base_url ?? '' }) },
        { label: 'Status', cell: (a) => a.status },
    ], services, { empty: 'No microservice apps are registered; open a service by name below.' }));
}

/** One service: its resources (GET /v1/svc/{s}/schema). */
export async function renderService(root, ctx, service) {
    const msgs = messages();
    fill(root, heading(`Service ${service}`), h('p', { class: 'loading', text: 'Loading…' }));
    const res = await api.get(api.path`/v1/svc/${service}/schema`);
    if (!ctx.live()) return;
    const resources = Object.values(res.data.resources ?? {});
    const create = h('form', { class: 'inline new-resource' },
        h('label', { class: 'field' }, h('span', { class: 'label', text: 'New resource' }),
            h('input', { type: 'text', name: 'resource', required: true, placeholder: 'orders' })),
        h('button', { type: 'submit', text: 'Define its schema' }));
    onSubmit(create, msgs, async () => {
        const r = create.elements.resource.value.trim();
        if (!NAME.test(r)) throw new Error('A resource name is lower-case letters, digits and _ (it starts with a letter).');
        location.hash = `#/schema/${encodeURIComponent(service)}/${encodeURIComponent(r)}`;
    });
    fill(root, heading(`Service ${service}`, `Resources in ${res.data.mode ?? ctx.mode} mode.`), msgs.el,
        table([
            { label: 'Resource', cell: (r) => h('a', { href: `#/data/${encodeURIComponent(service)}/${encodeURIComponent(r.name)}`, text: r.name }) },
            { label: 'Fields', cell: (r) => Object.keys(r.fields ?? {}).join(', ') },
            { label: 'Version', cell: (r) => r.version },
            { label: 'Changed', cell: (r) => when(r.updated_at) },
            {
                label: '', cell: (r) => (ctx.platformAdmin
                    ? h('a', { href: `#/schema/${encodeURIComponent(service)}/${encodeURIComponent(r.name)}`, text: 'Edit schema' })
                    : ''),
            },
        ], resources, { empty: 'No resources in this mode yet.' }),
        ctx.platformAdmin
            ? create
            : h('p', { class: 'hint', text: 'Schemas belong to the platform: only its platform admins change them.' }));
}
