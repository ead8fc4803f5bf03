// The admin page: live rooms and their participants through the control API (`/api`, an
// admin token as Bearer), with its actions: mute, remove, close. The token stays in this tab.

import { t } from './i18n.js';
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
  if (!response.ok) throw new Error(data.message || data.error || response.statusText);
  return data;
}

async function load() {
  const error = document.getElementById('admin-error');
  error.hidden = true;
  const rooms = document.getElementById('rooms');
  try {
    const list = await api('GET', '/rooms');
    rooms.replaceChildren();
    if (!list.length) rooms.append(tr(h('p', {}), 'admin.none'));
    for (const room of list) {
      const people = await api('GET', `/rooms/${encodeURIComponent(room.name)}/participants`);
      rooms.append(roomSection(room, people));
    }
  } catch (e) {
    error.hidden = false;
    tr(error, 'admin.error', { message: e.message });
  }
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
