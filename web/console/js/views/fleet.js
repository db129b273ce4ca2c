// The fleet's process table (GET /v1/admin/fleet, platform admins): what
// `tessera status` prints, one row per worker slot.

import * as api from '../api.js';
import { h, fill, table, display } from '../dom.js';
import { messages, action, heading } from '../ui.js';

const COLUMNS = [
    ['slot', 'Slot'], ['role', 'Role'], ['pid', 'PID'], ['state', 'State'], ['uptime_s', 'Uptime (s)'],
    ['restarts', 'Restarts'], ['requests', 'Requests'], ['current_request_ms', 'Current (ms)'], ['rss_kb', 'RSS (KiB)'],
    ['events_applied', 'Events'], ['lag_ms', 'Lag (ms)'], ['generation', 'Gen.'], ['last_exit', 'Last exit'],
];

export async function renderFleet(root, ctx) {
    const msgs = messages();
    const body = h('div');
    fill(root, heading('Fleet', 'The worker processes serving this deployment.'), msgs.el,
        action('Refresh', msgs, load, { name: 'refresh' }), body);

    async function load() {
        const res = await api.get('/v1/admin/fleet');
        if (!ctx.live()) return;
        const f = res.data;
        fill(body,
            h('p', { class: 'facts-line', text: `master pid ${display(f.master_pid)} · up ${fmt(f.uptime_s)} s · generation ${display(f.generation)}` }),
            table(COLUMNS.map(([k, label]) => ({
                label, class: typeof (f.slots ?? [])[0]?.[k] === 'number' ? 'num' : '',
                cell: (s) => (k === 'uptime_s' ? fmt(s[k]) : s[k] === '' ? '' : display(s[k])),
            })), f.slots ?? [], { empty: 'No worker slots.' }));
    }

    await load();
}

function fmt(v) {
    return typeof v === 'number' ? v.toFixed(1) : display(v);
}
