// The admin page: live rooms and their participants through the control API (`/api`, an
// admin token as Bearer), with its actions: mute, remove, close; and every case with its time
// limit, overdue ones first and flagged. The token stays in this tab.

import { dueText, t } from './i18n.js';
import { h, tr, wireLanguageSwitch } from './ui.js';

wireLanguageSwitch();

const form = document.getElementById('token-form');
const input = document.getElementById('admin-token');
input.value = sessionStorage.getItem('tiaojie.admin') ?? '';
form.addEventListener('submit', (e) => {
  e.preventDefault();
  sessionStorage.setItem('tiaojie.admin', input.value.trim());
  load();
});
if (input.value) load();

async function api(method, path, body) {
  const response = await fetch(`/api${path}`, {
    method,
    headers: {
      authorization: `Bearer ${sessionStorage.getItem('tiaojie.admin')}`,
      ...(body ? { 'content-type': 'application/json' } : {}),
    },
    body: body ? JSON.stringify(body) : undefined,
  });
  const data = await response.json().catch(() => ({}));
  if (!response.ok) {
    const error = new Error(data.error?.message || data.message || response.statusText);
    error.status = response.status;
    throw error;
  }
  return data;
}

async function load() {
  const error = document.getElementById('admin-error');
  error.hidden = true;
  const rooms = document.getElementById('rooms');
  try {
    // A mediator's staff token sees cases but no rooms.
    const list = await api('GET', '/rooms').catch((e) => (e.status === 403 ? null : Promise.reject(e)));
    rooms.replaceChildren();
    if (list && !list.length) rooms.append(tr(h('p', {}), 'admin.none'));
    for (const room of list ?? []) {
      const people = await api('GET', `/rooms/${encodeURIComponent(room.name)}/participants`);
      rooms.append(roomSection(room, people));
    }
    renderCases(await api('GET', '/cases'));
  } catch (e) {
    error.hidden = false;
    tr(error, 'admin.error', { message: e.message });
  }
}

document.getElementById('new-case').addEventListener('submit', async (e) => {
  e.preventDefault();
  const f = new FormData(e.target);
  const members = String(f.get('members'))
    .split('\n')
    .map((line) => line.split(/[,，]/).map((x) => x.trim()))
    .filter((parts) => parts[0])
    .map(([id, name, role, side, represents]) => ({ id, name, role, side, ...(represents ? { represents } : {}) }));
  try {
    await api('POST', '/cases', {
      number: f.get('number'),
      case_type: f.get('case_type'),
      claim_amount: Math.round(Number(f.get('amount')) * 100),
      stage: f.get('stage'),
      mediator: { id: f.get('mediator_id'), name: f.get('mediator_name'), role: 'mediator' },
      members,
    });
    e.target.reset();
    document.getElementById('new-case-box').open = false;
    load();
  } catch (err) {
    const error = document.getElementById('admin-error');
    error.hidden = false;
    tr(error, 'admin.error', { message: err.message });
  }
});

/** Schedules a session now, opens its check-in and issues everyone's personal link. */
async function startSession(id, row) {
  const scheduled = await api('POST', `/cases/${id}/sessions`, { scheduled_at: Date.now() });
  const session = scheduled.sessions[scheduled.sessions.length - 1].number;
  await api('POST', `/cases/${id}/sessions/${session}/lobby`);
  await showLinks(scheduled, session, row, 'admin.case.links');
}

/** The parties' links after the mediation ended, valid for 30 days: the outcome, the signed
 * agreement, a rating and judicial confirmation (applied for within 30 days of effect). */
async function followUpLinks(id, row) {
  const view = await api('GET', `/cases/${id}`);
  const last = view.sessions[view.sessions.length - 1];
  if (!last) return;
  await showLinks(view, last.number, row, 'admin.case.follow_up_links', FOLLOW_UP_SECS, (m) => m.role === 'party');
}

const FOLLOW_UP_SECS = 30 * 24 * 3600;

async function showLinks(view, session, row, title, ttl = null, who = () => true) {
  const links = [];
  for (const m of view.members.filter(who)) {
    const inv = await api('POST', `/cases/${view.id}/sessions/${session}/invitations`, { person: m.id, ...(ttl ? { ttl_secs: ttl } : {}) });
    links.push(h('li', { dataset: { person: m.id } }, `${m.name} · ${t(`role.${m.role}`)}: `, h('code', { class: 'link' }, `${location.origin}${inv.link}`)));
  }
  row.after(h('tr', { class: 'links' }, h('td', { colspan: 5 }, tr(h('p'), title), h('ul', {}, links))));
}

function renderCases(list) {
  const box = document.getElementById('cases');
  const sorted = [...list].sort((a, b) => Number(b.overdue) - Number(a.overdue) || a.due_at - b.due_at);
  box.replaceChildren(
    h(
      'table',
      {},
      h('tr', {}, ...['admin.case.number', 'admin.case.mediator', 'admin.case.due', 'admin.case.state', 'admin.case.actions'].map((k) => tr(h('th'), k))),
      sorted.map((c) => {
        const row = h(
          'tr',
          { dataset: { case: c.id }, class: c.overdue ? 'overdue' : '' },
          h('td', {}, c.number),
          h('td', {}, c.mediator),
          h('td', {}, dueText(c.due_at)),
          tr(h('td', {}), c.closed_at ? 'admin.case.closed' : c.overdue ? 'admin.case.overdue' : c.paused ? 'admin.case.paused' : 'admin.case.open'),
          h('td', {}),
        );
        const action = c.closed_at ? ['follow-up', followUpLinks, 'admin.case.follow_up'] : ['start-session', startSession, 'admin.case.session'];
        row.lastChild.append(
          tr(
            h('button', {
              type: 'button',
              'data-action': action[0],
              onclick: (e) => {
                e.target.disabled = true;
                action[1](c.id, row).catch((err) => alert(err.message));
              },
            }),
            action[2],
          ),
        );
        return row;
      }),
    ),
  );
}

function roomSection(room, people) {
  const act = (path, body) => () => api('POST', path, body).then(load, (e) => alert(e.message));
  const base = `/rooms/${encodeURIComponent(room.name)}`;
  return h(
    'section',
    { class: 'side', dataset: { room: room.name } },
    h('h2', {}, room.name),
    h(
      'table',
      {},
      h('caption', {}, tr(h('span'), 'admin.participants')),
      people.map((p) =>
        h(
          'tr',
          {},
          h('td', {}, p.name),
          h('td', {}, t(`role.${p.role}`)),
          h('td', {}, spaceLabel(p.space)),
          h('td', {}, p.audio_muted ? t('room.muted') : ''),
          h(
            'td',
            {},
            tr(h('button', { onclick: act(`${base}/participants/${encodeURIComponent(p.identity)}/mute`, { kind: 'audio', muted: !p.audio_muted }) }),
              p.audio_muted ? 'moderation.unmute' : 'moderation.mute'),
            ' ',
            tr(h('button', { class: 'danger', onclick: act(`${base}/participants/${encodeURIComponent(p.identity)}/remove`, { reason: '' }) }),
              'moderation.remove'),
          ),
        ),
      ),
    ),
    h('p', {}, tr(h('button', { class: 'danger', onclick: act(`${base}/close`, { reason: '' }) }), 'admin.close')),
  );
}

function spaceLabel(space = '') {
  if (space.startsWith('private:')) return t('space.private', { key: space.slice('private:'.length) });
  return space ? t(`space.${space}`) : '';
}
