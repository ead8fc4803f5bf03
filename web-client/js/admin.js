// The admin page: live rooms and their participants through the control API (`/api`, an
// admin token as Bearer), with its actions: mute, remove, close; and every case with its time
// limit, overdue ones first and flagged. The token stays in this tab.

import { describe } from './errors.js';
import { dueText, t } from './i18n.js';
import { placeKey } from './place.js';
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
    const error = new Error(data.error?.message || response.statusText);
    error.status = response.status;
    error.code = data.error?.code;
    error.details = data.error?.details;
    throw error;
  }
  return data;
}

/** Shows a refusal at the top of the page, in the person's language, with names. */
function showError(e) {
  const error = document.getElementById('admin-error');
  error.hidden = false;
  error.textContent = t('admin.error', { message: describe(e, nameOfMember) });
  delete error.dataset.i18n;
  error.scrollIntoView({ block: 'nearest' });
}

/** A name typed into the case form, for a refusal that names an account. */
function nameOfMember(id) {
  const row = [...document.querySelectorAll('#member-rows .member')].find((r) => idOf(r) === id);
  return row?.querySelector('[name=name]').value || undefined;
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
    showError(e);
  }
}

// ---- the case form: each person a row with pickers, so nothing is typed as codes ----------

/** A fresh account id for a person the court has none for yet (tokens are bound to it). */
function newId(prefix) {
  return `${prefix}-${crypto.randomUUID().slice(0, 8)}`;
}

/** A row's account: the one typed, else the one made for it when the row was added. */
function idOf(row) {
  return row.querySelector('[name=id]').value.trim() || row.dataset.generated;
}

/** The parties typed so far, as options for an agent's "represents". */
function partyOptions(side) {
  return [...document.querySelectorAll('#member-rows .member[data-role="party"]')]
    .filter((r) => r.querySelector('[name=side]').value === side)
    .map((r) => ({ id: idOf(r), name: r.querySelector('[name=name]').value }));
}

function refreshRepresents() {
  for (const row of document.querySelectorAll('#member-rows .member[data-role="agent"]')) {
    const select = row.querySelector('[name=represents]');
    const side = row.querySelector('[name=side]').value;
    const keep = select.value;
    select.replaceChildren(
      ...partyOptions(side).map((p) => h('option', { value: p.id }, p.name || t('admin.case.unnamed'))),
    );
    if ([...select.options].some((o) => o.value === keep)) select.value = keep;
  }
}

function memberRow(role) {
  const field = (key, control) => h('label', {}, tr(h('span'), key), ' ', control);
  const side = h(
    'select',
    { name: 'side', onchange: refreshRepresents },
    tr(h('option', { value: 'applicant' }), 'case.side.applicant'),
    tr(h('option', { value: 'respondent' }), 'case.side.respondent'),
  );
  const row = h(
    'div',
    { class: 'member', dataset: { role, generated: newId(role === 'party' ? 'p' : 'a') } },
    tr(h('strong', { class: 'member-role' }), `role.${role}`),
    field('admin.case.member_name', h('input', { name: 'name', required: true, oninput: refreshRepresents })),
    field('admin.case.side', side),
    role === 'agent' ? field('admin.case.represents', h('select', { name: 'represents', required: true })) : null,
    // The person's court account if they have one; otherwise one is made for their links.
    field('admin.case.account', h('input', { name: 'id', placeholder: t('admin.case.account_optional'), oninput: refreshRepresents })),
    tr(
      h('button', {
        type: 'button',
        class: 'mod danger',
        onclick: () => {
          row.remove();
          refreshRepresents();
        },
      }),
      'admin.case.remove_member',
    ),
  );
  document.getElementById('member-rows').append(row);
  refreshRepresents();
  return row;
}

function resetMembers() {
  document.getElementById('member-rows').replaceChildren();
  memberRow('party').querySelector('[name=side]').value = 'applicant';
  memberRow('party').querySelector('[name=side]').value = 'respondent';
  refreshRepresents();
}

document.getElementById('add-party').onclick = () => memberRow('party');
document.getElementById('add-agent').onclick = () => memberRow('agent');
resetMembers();

document.getElementById('new-case').addEventListener('submit', async (e) => {
  e.preventDefault();
  const f = new FormData(e.target);
  const members = [...document.querySelectorAll('#member-rows .member')].map((row) => {
    const value = (name) => row.querySelector(`[name=${name}]`)?.value?.trim();
    const represents = value('represents');
    return {
      id: idOf(row),
      name: value('name'),
      role: row.dataset.role,
      side: value('side'),
      ...(represents ? { represents } : {}),
    };
  });
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
    resetMembers();
    document.getElementById('new-case-box').open = false;
    load();
  } catch (err) {
    showError(err);
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
      sorted.length === 0 && h('tr', {}, tr(h('td', { class: 'empty', colspan: 5 }), 'admin.case.none')),
      sorted.map((c) => {
        const row = h(
          'tr',
          { dataset: { case: c.id }, class: c.overdue ? 'overdue' : '' },
          h('td', {}, c.number),
          h('td', {}, c.mediator_name || c.mediator),
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
                action[1](c.id, row).catch(showError);
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
  const act = (path, body) => () => api('POST', path, body).then(load, showError);
  const base = `/rooms/${encodeURIComponent(room.name)}`;
  return h(
    'section',
    { class: 'side', dataset: { room: room.name } },
    h('h2', {}, room.metadata || room.name),
    h(
      'table',
      {},
      h('caption', {}, tr(h('span'), 'admin.participants', { count: people.length })),
      people.length === 0 && h('tr', {}, tr(h('td', { class: 'empty' }), 'admin.nobody')),
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
  return space ? t(placeKey(space)) : '';
}
