// The organization's audit trail (GET /v1/audit, audit:read), newest first,
// paged with the API's keyset cursor.

import * as api from '../api.js';
import { h, fill, table, when, display } from '../dom.js';
import { messages, action, heading } from '../ui.js';

export async function renderAudit(root, ctx) {
    const msgs = messages();
    const list = h('div');
    const pager = h('div', { class: 'pager' });
    const cursors = [null];   // cursors[i]: the cursor that loads page i
    fill(root, heading('Audit trail', 'Who did what in this organization.'), msgs.el, list, pager);

    async function show(page) {
        const query = { limit: '50' };
        if (cursors[page]) query.cursor = cursors[page];
        const res = await api.get('/v1/audit', { query });
        if (!ctx.live()) return;
        cursors.length = page + 1;
        if (res.data.next_cursor) cursors.push(res.data.next_cursor);
        fill(list, table([
            { label: 'When', cell: (e) => when(e.created_at) },
            { label: 'Actor', cell: (e) => h('code', { text: display(e.actor) }) },
            { label: 'Action', cell: (e) => e.action },
            { label: 'Target', cell: (e) => h('code', { text: display(e.target) }) },
            { label: 'Details', cell: (e) => (e.meta && Object.keys(e.meta).length ? JSON.stringify(e.meta) : '') },
        ], res.data.data ?? [], { empty: 'No entries.' }));
        fill(pager,
            page > 0 ? action('Previous', msgs, () => show(page - 1), { name: 'prev' }) : null,
            h('span', { class: 'page-no', text: `Page ${page + 1}` }),
            cursors.length > page + 1 ? action('Next', msgs, () => show(page + 1), { name: 'next' }) : null);
    }

    await show(0);
}
