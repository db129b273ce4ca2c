// The organization (GET /v1/orgs/current) and the signed-in user as the API
// sees them (GET /v1/auth/me, fetched again here so the mode shown is the
// API's answer, not the console's belief).

import * as api from '../api.js';
import { h, fill, when, display } from '../dom.js';
import { heading } from '../ui.js';

function dl(pairs) {
    return h('dl', { class: 'facts' }, pairs.map(([k, v]) => [h('dt', { text: k }), h('dd', {}, v instanceof Node ? v : display(v))]));
}

export async function renderOrg(root, ctx) {
    fill(root, heading('Organization'), h('p', { class: 'loading', text: 'Loading…' }));
    const [org, me] = await Promise.all([api.get('/v1/orgs/current'), api.get('/v1/auth/me')]);
    if (!ctx.live()) return;
    const o = org.data, m = me.data;
    fill(root, heading(o.name ?? 'Organization', o.slug ? `/${o.slug}` : null),
        dl([
            ['Id', h('code', { text: o.id })],
            ['Plan', o.plan],
            ['Platform organization', m.org && m.org.platform ? 'yes: its platform admins shape the services\' schemas' : 'no'],
            ['Created', when(o.created_at)],
        ]),
        h('h2', { text: 'You' }),
        dl([
            ['Email', m.user ? m.user.email : null],
            ['Role', m.role],
            ['Permissions', h('ul', { class: 'perms' }, (m.permissions ?? []).map((p) => h('li', {}, h('code', { text: p }))))],
            ['Platform admin', m.user && m.user.is_platform_admin ? 'yes' : 'no'],
            ['Mode of this session', h('span', { class: 'mode-now', text: m.mode })],
        ]));
}
