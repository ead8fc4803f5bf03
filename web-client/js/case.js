// The mediation panel next to the call: start-of-session checks (a party's warning and
// consents; the mediator's identity checks and "start"), private rooms, minutes and the
// agreement with its signatures. Every action is an API call the server checks against the
// permission matrix; this page only shows what the server says (`GET /api/cases/current`,
// refreshed on `case.updated` and `minutes.updated`).

import { describe } from './errors.js';
import { dueText, t, timeText } from './i18n.js';
import { JOINT, LOBBY, SIDES, STAFF_PLACES, placeKey, privateKey } from './place.js';
import { ask, h, tr } from './ui.js';

const SAVE_DELAY_MS = 800;

export class CasePanel {
  /**
   * `token`: the session token; `you()`: the participant info of this page's person;
   * `presence()`: who is in the room now (identity → participant info), from signaling.
   */
  constructor(token, you, presence = () => new Map()) {
    this.token = token;
    this.you = you;
    this.presence = presence;
    this.view = null; // CurrentCase from the server
    this.minutes = null;
    this.saveTimer = null;
    this.savedRevision = 0;
    this.root = h('div', { id: 'case', class: 'case' });
  }

  async api(method, path, body) {
    const response = await fetch(`/api${path}`, {
      method,
      headers: {
        authorization: `Bearer ${this.token}`,
        ...(body ? { 'content-type': 'application/json' } : {}),
      },
      body: body ? JSON.stringify(body) : undefined,
    });
    const text = await response.text();
    const value = text ? JSON.parse(text) : null;
    if (!response.ok) {
      const error = new Error(value?.error?.message ?? response.statusText);
      error.code = value?.error?.code;
      error.details = value?.error?.details;
      throw error;
    }
    return value;
  }

  /** Loads the case; resolves to false when this room is no case's session. */
  async load() {
    let view;
    try {
      view = await this.api('GET', '/cases/current');
    } catch (e) {
      if (e.code === 'not_found') return false;
      throw e;
    }
    // Reads overlap (an action's own, and one per `case.updated`) and may answer out of order:
    // a case read before the latest event (or before the court network had the application)
    // never replaces one read after it.
    const shown = this.view;
    const version = (v) => [v.seq, v.confirmation_delivered ? 1 : 0];
    if (shown && view.id === shown.id) {
      const [a, b] = [version(view), version(shown)];
      if (a[0] < b[0] || (a[0] === b[0] && a[1] < b[1])) return true;
    }
    this.view = view;
    if (!this.minutes) await this.loadMinutes();
    this.render();
    return true;
  }

  async loadMinutes() {
    this.minutes = await this.api('GET', `/cases/${this.view.id}/sessions/${this.view.session}/minutes`);
    this.savedRevision = this.minutes.revision;
  }

  /** `minutes.updated` from the room. */
  /** `minutes.updated` from the room: the text itself is read through the API (audited). */
  async minutesUpdated(m) {
    if (!this.view || m.case !== this.view.id || m.session !== this.view.session) return;
    if (this.isMediator() || this.minutes?.revision === m.revision) return;
    await this.loadMinutes();
    this.render();
  }

  me() {
    return this.view?.members.find((m) => m.id === this.you().identity);
  }

  isMediator() {
    return this.me()?.role === 'mediator';
  }

  session() {
    return this.view?.sessions.find((s) => s.number === this.view.session);
  }

  base() {
    return `/cases/${this.view.id}`;
  }

  sessionPath() {
    return `${this.base()}/sessions/${this.view.session}`;
  }

  /** Runs an action; shows its refusal in the panel's note. */
  async act(f) {
    const note = this.root.querySelector('.case-note');
    if (note) note.hidden = true;
    try {
      await f();
      await this.load();
    } catch (e) {
      this.render();
      this.note(e);
    }
  }

  /** Shows a refusal in the panel, in the person's language, with names. */
  note(error) {
    const n = this.root.querySelector('.case-note');
    if (!n) return;
    n.textContent = t('case.failed', { reason: this.describe(error) });
    n.hidden = false;
  }

  /** A refusal in words, naming the case's people. */
  describe(error) {
    return describe(error, (id) => this.nameOf(id));
  }

  /** A person's name as the case records it. */
  nameOf(id) {
    return this.view?.members.find((m) => m.id === id)?.name;
  }

  render() {
    if (!this.view) return;
    const me = this.me();
    const session = this.session();
    const limit = this.view.time_limit;
    // Calendar days (CPL 85): the limit ends at 24:00 China time of its last day; whole days
    // left after today, and that last date.
    const days = Math.floor(limit.remaining_ms / 86_400_000);
    const date = dueText(limit.due_at);
    const head = h(
      'div',
      { class: 'case-head' },
      h('strong', {}, this.view.number),
      ' ',
      tr(h('span', { class: `phase phase-${session?.phase}` }), `case.phase.${session?.phase}`),
      ' ',
      this.view.outcome
        ? ''
        : limit.overdue
          ? tr(h('span', { class: 'overdue' }), 'case.overdue')
          : tr(
              h('span', { class: 'limit' }),
              limit.paused ? 'case.paused' : days > 0 ? 'case.days_left' : 'case.due_today',
              { days, date },
            ),
    );
    const parts = [head, h('p', { class: 'note case-note', role: 'alert', hidden: true })];
    if (this.view.outcome) {
      parts.push(tr(h('p', { class: 'outcome' }), `case.outcome.${this.view.outcome.result}`));
    }
    if (!this.view.outcome) parts.push(this.renderExtension(me));
    if (me?.role === 'party' && session?.phase === 'ended') parts.push(this.renderRating(me, session));
    if (me && (me.role === 'party' || me.role === 'agent')) parts.push(this.renderOwnChecks(me, session));
    if (me?.role === 'mediator') {
      parts.push(this.renderChecksTable(session));
      parts.push(this.renderPrivateRooms(session));
    }
    parts.push(this.renderMinutes(me, session));
    parts.push(this.renderAgreement(me));
    if (this.view.agreement.effective_at) parts.push(this.renderConfirmation(me));
    if (me?.role === 'mediator' && !this.view.outcome) {
      if (session?.phase === 'in_session') parts.push(this.renderInvite());
      parts.push(this.renderOutcome(session));
    }
    // Keep a focused editor where it is: re-rendering would lose the caret.
    const editing = this.root.contains(document.activeElement) && document.activeElement.tagName === 'TEXTAREA';
    if (editing) {
      const keep = document.activeElement;
      const id = keep.id;
      this.root.replaceChildren(...parts);
      const fresh = this.root.querySelector(`#${id}`);
      if (fresh) fresh.replaceWith(keep);
      keep.focus();
    } else {
      this.root.replaceChildren(...parts);
    }
  }

  /** What `id` still lacks in this session, as the server computed it. */
  missingFor(id) {
    const session = this.view?.missing_checks.find((m) => m.session === this.view.session);
    return session?.missing.filter((m) => m.person === id) ?? [];
  }

  /** A party's (or agent's) own start-of-session card: what is still theirs to do, the warning,
   * the consents, and whether the mediator has verified their identity. */
  renderOwnChecks(me, session) {
    const checks = session?.checks[me.id] ?? {};
    const missing = this.missingFor(me.id);
    const done = missing.length === 0 && Boolean(checks.identity);
    // Once in session, a completed card folds away: the call needs the room.
    const folded = done && (session?.phase === 'in_session' || session?.phase === 'ended');
    const card = folded
      ? h('details', { class: 'own-checks' }, tr(h('summary', { class: 'ok' }), 'case.checks.done'))
      : h('section', { class: 'own-checks', 'aria-labelledby': 'own-checks-title' });
    if (!folded) {
      card.append(tr(h('h3', { id: 'own-checks-title' }), 'case.checks.title'));
      // What is theirs to give, and what waits on the mediator, in words.
      const theirs = missing.filter((m) => !m.check.startsWith('identity_'));
      if (session?.phase !== 'scheduled' && session?.phase !== 'ended') {
        card.append(
          theirs.length
            ? h(
                'div',
                { class: 'todo' },
                tr(h('p', { class: 'pending' }), 'case.checks.yours'),
                h('ul', {}, ...theirs.map((m) => tr(h('li'), `todo.${m.check}`))),
              )
            : tr(h('p', { class: 'ok' }), 'case.checks.yours_done'),
        );
      }
    }
    card.append(
      checks.identity
        ? tr(h('p', { class: checks.identity.passed ? 'ok' : 'bad' }), checks.identity.passed ? 'case.identity.done' : 'case.identity.failed', {
            method: t(`case.method.${checks.identity.method}`),
          })
        : tr(h('p', { class: 'pending' }), 'case.identity.waiting'),
    );
    card.append(tr(h('p', { class: 'warning-text' }), 'case.warning.text'));
    if (checks.warning_acknowledged_at) {
      card.append(tr(h('p', { class: 'ok' }), 'case.warning.done'));
    } else {
      card.append(
        tr(
          h('button', {
            type: 'button',
            class: 'primary',
            'data-action': 'ack-warning',
            onclick: () => this.act(() => this.api('PUT', `${this.sessionPath()}/members/${me.id}/warning`)),
          }),
          'case.warning.ack',
        ),
      );
    }
    if (me.role === 'party') {
      for (const subject of ['online_mediation', 'recording', 'recording_replaces_minutes']) {
        const answer = checks[subject];
        const row = h('div', { class: 'consent', dataset: { subject } }, tr(h('span', {}), `case.consent.${subject}`), ' ');
        if (answer) {
          row.append(tr(h('strong', { class: answer.given ? 'ok' : 'bad' }), answer.given ? 'case.consent.yes' : 'case.consent.no'));
        } else {
          for (const given of [true, false]) {
            row.append(
              tr(
                h('button', {
                  type: 'button',
                  'data-action': `consent-${subject}-${given ? 'yes' : 'no'}`,
                  onclick: () =>
                    this.act(() =>
                      this.api('PUT', `${this.sessionPath()}/members/${me.id}/consents`, { subject, given }),
                    ),
                }),
                given ? 'case.consent.give' : 'case.consent.refuse',
              ),
              ' ',
            );
          }
        }
        card.append(row);
      }
    }
    return card;
  }

  /** Extending the time limit (ODR-Med 24): the mediator proposes, each party answers. */
  renderExtension(me) {
    const box = h('section', { class: 'extension' });
    const pending = this.view.pending_extension;
    if (me?.role === 'mediator') {
      if (pending) {
        box.append(tr(h('p', { class: 'pending' }), 'case.extension.pending', { days: pending.days, agreed: pending.agreed.length }));
      }
      box.append(
        tr(
          h('button', {
            type: 'button',
            'data-action': 'propose-extension',
            onclick: async () => {
              const answer = await ask({
                title: 'case.extension.propose',
                fields: [{ name: 'days', label: 'case.extension.days', type: 'number', min: 1, max: 30, required: true }],
                confirm: 'case.extension.propose',
              });
              if (answer) this.act(() => this.api('POST', `${this.base()}/deadline/extensions`, { days: Number(answer.days) }));
            },
          }),
          'case.extension.propose',
        ),
      );
    } else if (me?.role === 'party' && pending && !pending.agreed.includes(me.id)) {
      box.append(tr(h('p', { class: 'pending' }), 'case.extension.asked', { days: pending.days }));
      for (const agreed of [true, false]) {
        box.append(
          tr(
            h('button', {
              type: 'button',
              'data-action': `extension-${agreed ? 'yes' : 'no'}`,
              onclick: () => this.act(() => this.api('PUT', `${this.base()}/members/${me.id}/extension-consent`, { agreed })),
            }),
            agreed ? 'case.consent.give' : 'case.consent.refuse',
          ),
          ' ',
        );
      }
    }
    return box;
  }

  /** After the session: a party rates it (ODR-Med 27), once. */
  renderRating(me, session) {
    const box = h('section', { class: 'rating' });
    box.append(tr(h('h3', {}), 'case.rating.title'));
    const mine = session.ratings.find((r) => r.person === me.id);
    if (mine) {
      box.append(tr(h('p', { class: 'ok' }), 'case.rating.done', { score: mine.score }));
      return box;
    }
    const comment = h('textarea', { id: 'rating-comment', rows: 2, 'aria-label': t('case.rating.comment') });
    const scores = h('div', { class: 'scores', role: 'group', 'aria-label': t('case.rating.title') });
    for (let score = 1; score <= 5; score += 1) {
      scores.append(
        h(
          'button',
          {
            type: 'button',
            'data-action': `rate-${score}`,
            'aria-label': t('case.rating.score', { score }),
            onclick: () =>
              this.act(() =>
                this.api('PUT', `${this.sessionPath()}/members/${me.id}/rating`, { score, comment: comment.value }),
              ),
          },
          '★'.repeat(score),
        ),
        ' ',
      );
    }
    box.append(tr(h('label', { for: 'rating-comment' }), 'case.rating.comment'), comment, scores);
    return box;
  }

  /** Where `id` is now, in words: waiting, in the joint room, a private room, reconnecting, or
   * not here. Read from the room (signaling), so it is live. */
  whereIs(id) {
    const p = this.presence().get(id) ?? (id === this.you()?.identity ? this.you() : null);
    if (!p) return ['case.where.absent', 'absent'];
    if (p.connection === 'reconnecting') return ['case.where.reconnecting', 'reconnecting'];
    if (p.space === LOBBY) return ['case.where.waiting', 'waiting'];
    return [placeKey(p.space), 'here'];
  }

  /** How a member takes part: 申请人 / 被申请人, and an agent for whom. */
  standing(m) {
    if (m.role === 'party' && m.side) return t(`case.party.${m.side}`);
    if (m.role === 'agent') return t('case.agent_of', { name: this.nameOf(m.represents) ?? '' });
    return t(`role.${m.role}`);
  }

  /** The mediator's table of everyone's checks, live: where each person is, their identity
   * check (with the buttons to record one), the warning, the consents, the minutes; what each
   * still lacks; and "start". */
  renderChecksTable(session) {
    const box = h('section', { class: 'checks' });
    box.append(tr(h('h3', {}), 'case.checks.everyone'));
    const mark = (ok, yes, no, pending = 'case.mark.pending') =>
      tr(h('span', { class: ok === true ? 'ok' : ok === false ? 'bad' : 'pending' }), ok === true ? yes : ok === false ? no : pending);
    const revision = this.minutes?.revision ?? 0;
    // One card a person (not a wide table): it reads the same in the side column and on a
    // phone.
    const item = (label, ...value) => h('div', { class: 'item' }, tr(h('dt'), label), h('dd', {}, ...value));
    const cards = this.view.members
      .filter((m) => m.role !== 'mediator')
      .map((m) => {
        const c = session?.checks[m.id] ?? {};
        const [where, presence] = this.whereIs(m.id);
        const identity = [];
        if (c.identity) identity.push(mark(c.identity.passed, 'case.mark.verified', 'case.mark.failed'), ' ', t(`case.method.${c.identity.method}`));
        else identity.push(mark(undefined, '', '', 'case.mark.pending'));
        const checkable = session?.phase === 'lobby_open' || session?.phase === 'in_session';
        const buttons = [];
        if (checkable && !c.identity?.passed && m.role !== 'judge') {
          for (const method of ['id_document_video', 'face_recognition', 'offline']) {
            buttons.push(
              tr(
                h('button', {
                  type: 'button',
                  class: 'mod',
                  'data-action': `verify-${m.id}-${method}`,
                  onclick: async () => {
                    let note = '';
                    if (method === 'offline') {
                      const answer = await ask({
                        title: 'case.identity.offline_title',
                        text: ['case.identity.offline_for', { name: m.name }],
                        fields: [{ name: 'note', label: 'case.identity.offline_note', required: true }],
                        confirm: 'case.identity.record',
                      });
                      if (!answer) return;
                      note = answer.note;
                    }
                    this.act(() =>
                      this.api('PUT', `${this.sessionPath()}/members/${m.id}/identity`, { method, passed: true, note }),
                    );
                  },
                }),
                `case.method.${method}`,
              ),
            );
          }
        }
        const party = m.role === 'party';
        const agentOrParty = party || m.role === 'agent';
        const confirmed = session?.minutes_confirmations.some((x) => x.person === m.id && x.revision === revision);
        const lacking = this.missingFor(m.id);
        const items = [item('case.col.identity', ...identity)];
        if (agentOrParty) items.push(item('case.col.warning', mark(c.warning_acknowledged_at ? true : undefined, 'case.mark.done', '', 'case.mark.pending')));
        if (party) {
          items.push(
            item('case.col.online', mark(c.online_mediation?.given, 'case.consent.yes', 'case.consent.no')),
            item('case.col.recording', mark(c.recording?.given, 'case.consent.yes', 'case.consent.no')),
          );
          if (revision > 0) items.push(item('case.col.minutes', mark(confirmed ? true : undefined, 'case.mark.confirmed', '', 'case.mark.pending')));
        }
        return h(
          'article',
          { class: 'person-check', dataset: { person: m.id, presence } },
          h(
            'header',
            {},
            h('strong', {}, m.name),
            h('span', { class: 'standing' }, this.standing(m)),
            tr(h('span', { class: `where where-${presence}` }), where),
          ),
          h('dl', {}, ...items),
          buttons.length ? h('p', { class: 'verify' }, tr(h('span'), 'case.identity.verify_by'), ' ', ...buttons) : null,
          lacking.length
            ? h('p', { class: 'lacking' }, tr(h('span'), 'case.col.lacking'), '：', lacking.map((x) => t(`check.${x.check}`)).join('、'))
            : tr(h('p', { class: 'ok ready' }), 'case.mark.ready'),
        );
      });
    box.append(h('div', { class: 'check-cards' }, ...cards));
    if (session?.phase === 'scheduled') {
      box.append(
        tr(h('button', { type: 'button', 'data-action': 'open-lobby', onclick: () => this.act(() => this.api('POST', `${this.sessionPath()}/lobby`)) }), 'case.open_lobby'),
      );
    }
    if (session?.phase === 'lobby_open') {
      // What still blocks the start: the checks of those present, named.
      const here = new Set([...this.presence().keys()]);
      const blocking = (this.view.missing_checks.find((x) => x.session === this.view.session)?.missing ?? []).filter((x) => here.has(x.person));
      if (blocking.length) {
        box.append(
          tr(h('p', { class: 'pending' }), 'case.start.blocked'),
          h('ul', { class: 'missing' }, ...blocking.map((x) => h('li', {}, `${x.name}：${t(`check.${x.check}`)}`))),
        );
      }
      box.append(
        tr(
          h('button', { type: 'button', class: 'primary', 'data-action': 'start', onclick: () => this.act(() => this.api('POST', `${this.sessionPath()}/start`)) }),
          'case.start',
        ),
      );
    }
    return box;
  }

  /** The mediator's private-room buttons (背对背). */
  renderPrivateRooms(session) {
    const box = h('section', { class: 'private-rooms' });
    if (session?.phase !== 'in_session') return box;
    box.append(tr(h('h3', {}), 'case.private.title'));
    const move = (side, priv) => () =>
      this.act(() => this.api('POST', `${this.sessionPath()}/sides/${side}/move`, { private: priv }));
    for (const side of SIDES) {
      const where = session.sides[side];
      box.append(
        h('p', {}, tr(h('span', {}), `case.side.${side}`), ': ', tr(h('strong', {}), where === JOINT ? 'case.where.joint' : 'case.where.private')),
      );
      box.append(
        where === JOINT
          ? tr(h('button', { type: 'button', 'data-action': `private-${side}`, onclick: move(side, true) }), `case.private.${side}`)
          : tr(h('button', { type: 'button', 'data-action': `joint-${side}`, onclick: move(side, false) }), 'case.private.back'),
        ' ',
      );
    }
    // The mediator (and an assisting judge) go between the rooms.
    const moveTo = (person, to) => () =>
      this.act(() => this.api('POST', `${this.sessionPath()}/members/${person}/move`, { to }));
    const staff = this.view.members.filter((m) => m.role === 'mediator' || m.role === 'judge');
    for (const m of staff) {
      const row = h('p', { class: 'goto', dataset: { person: m.id } }, `${m.name} · ${t(`role.${m.role}`)}: `);
      for (const to of STAFF_PLACES) {
        const key = to === JOINT ? 'case.go.joint' : `case.go.${privateKey(to)}`;
        row.append(tr(h('button', { type: 'button', class: 'mod', 'data-action': `goto-${m.id}-${to}`, onclick: moveTo(m.id, to) }), key), ' ');
      }
      box.append(row);
    }
    return box;
  }

  /** The mediator invites an assisting judge (在线请求法官协助) and gets the judge's link. */
  renderInvite() {
    const box = h('section', { class: 'invite' });
    box.append(tr(h('h3', {}), 'case.invite.title'));
    const id = h('input', { id: 'invite-id', 'aria-label': t('case.invite.id'), placeholder: t('case.invite.id') });
    const name = h('input', { id: 'invite-name', 'aria-label': t('case.invite.name'), placeholder: t('case.invite.name') });
    const out = h('p', { class: 'invite-link' });
    const invite = async () => {
      await this.api('POST', `${this.base()}/members`, { id: id.value.trim(), name: name.value.trim(), role: 'judge' });
      const inv = await this.api('POST', `${this.sessionPath()}/invitations`, { person: id.value.trim() });
      this.lastInvite = `${location.origin}${inv.link}`;
    };
    box.append(
      id,
      ' ',
      name,
      ' ',
      tr(h('button', { type: 'button', 'data-action': 'invite-judge', onclick: () => this.act(invite) }), 'case.invite.judge'),
      out,
    );
    if (this.lastInvite) out.append(h('code', { class: 'link' }, this.lastInvite));
    return box;
  }

  renderMinutes(me, session) {
    const box = h('section', { class: 'minutes' });
    box.append(tr(h('h3', {}), 'case.minutes.title'));
    if (this.minutes?.revision > 0) {
      box.append(
        tr(
          h('button', {
            type: 'button',
            class: 'mod',
            'data-action': 'minutes-document',
            onclick: () => this.download(`${this.sessionPath()}/minutes/document`, 'minutes'),
          }),
          'case.minutes.document',
        ),
      );
    }
    if (session?.minutes_replaced_by_recording) box.append(tr(h('p', { class: 'ok' }), 'case.minutes.replaced'));
    const text = this.minutes?.text ?? '';
    if (me?.role === 'mediator' && session?.phase !== 'ended') {
      const area = h('textarea', { id: 'minutes-editor', rows: 6, 'aria-label': t('case.minutes.title') });
      // The panel is drawn again whenever anyone changes the case: what the mediator is typing
      // and has not saved yet survives that.
      area.value = this.minutesDraft ?? text;
      area.addEventListener('input', () => {
        this.minutesDraft = area.value;
        this.scheduleSave(area);
      });
      box.append(area, tr(h('p', { class: 'saved', role: 'status' }), 'case.minutes.revision', { revision: this.minutes?.revision ?? 0 }));
      if (!session?.minutes_replaced_by_recording) {
        box.append(
          tr(
            h('button', {
              type: 'button',
              'data-action': 'replace-minutes',
              onclick: () => this.act(() => this.api('POST', `${this.sessionPath()}/minutes/replace-by-recording`)),
            }),
            'case.minutes.replace',
          ),
        );
      }
    } else {
      box.append(h('pre', { class: 'minutes-text' }, text || t('case.minutes.empty')));
      const confirmed = session?.minutes_confirmations.find((c) => c.person === me?.id && c.revision === this.minutes?.revision);
      if (me?.role === 'party' && this.minutes?.revision > 0 && (confirmed || !this.view.outcome)) {
        box.append(
          confirmed
            ? tr(h('p', { class: 'ok' }), 'case.minutes.confirmed')
            : tr(
                h('button', {
                  type: 'button',
                  'data-action': 'confirm-minutes',
                  onclick: () =>
                    this.act(() =>
                      this.api('PUT', `${this.sessionPath()}/members/${me.id}/minutes-confirmation`, { revision: this.minutes.revision }),
                    ),
                }),
                'case.minutes.confirm',
              ),
        );
      }
    }
    return box;
  }

  scheduleSave(area) {
    clearTimeout(this.saveTimer);
    this.saveTimer = setTimeout(async () => {
      try {
        this.minutes = await this.api('PUT', `${this.sessionPath()}/minutes`, {
          base_revision: this.savedRevision,
          text: area.value,
        });
        this.savedRevision = this.minutes.revision;
        if (this.minutesDraft === this.minutes.text) this.minutesDraft = undefined;
        const saved = this.root.querySelector('.minutes .saved');
        if (saved) tr(saved, 'case.minutes.revision', { revision: this.minutes.revision });
      } catch (e) {
        this.note(e);
      }
    }, SAVE_DELAY_MS);
  }

  renderAgreement(me) {
    const box = h('section', { class: 'agreement' });
    box.append(tr(h('h3', {}), 'case.agreement.title'));
    const agreement = this.view.agreement;
    const current = agreement.versions[agreement.versions.length - 1];
    if (me?.role === 'mediator' && !agreement.effective_at && !this.view.outcome) {
      const terms = h('textarea', { id: 'agreement-terms', rows: 4, 'aria-label': t('case.agreement.terms') });
      // Kept across redraws (anyone's change to the case redraws the panel) until drafted.
      terms.value = this.termsDraft ?? '';
      terms.addEventListener('input', () => (this.termsDraft = terms.value));
      const draft = async () => {
        await this.api('POST', `${this.base()}/agreement/versions`, { terms: terms.value });
        this.termsDraft = undefined;
      };
      box.append(
        tr(h('label', { for: 'agreement-terms' }), 'case.agreement.terms'),
        terms,
        tr(
          h('button', {
            type: 'button',
            'data-action': 'draft',
            // Empty terms would make an agreement that agrees to nothing.
            onclick: () => (terms.value.trim() ? this.act(draft) : terms.focus()),
          }),
          'case.agreement.draft',
        ),
      );
    }
    if (!current) {
      box.append(tr(h('p', {}), 'case.agreement.none'));
      return box;
    }
    const signed = agreement.signatures.filter((x) => x.version === current.version);
    const unsigned = this.view.unsigned.map((id) => this.nameOf(id) ?? id);
    const mustSign = this.view.unsigned.includes(me?.id) && !this.view.outcome && !agreement.effective_at;
    box.append(
      tr(h('p', { class: 'version' }), 'case.agreement.version', { version: current.version }),
      h('p', { class: 'hash' }, 'SHA-256：', h('code', { class: 'sha256' }, current.sha256)),
      h(
        'ul',
        { class: 'signatures' },
        ...signed.map((x) => h('li', {}, `✓ ${x.name} · ${this.signerStanding(x)} · ${timeText(x.at)}`)),
      ),
    );
    if (agreement.effective_at) {
      box.append(tr(h('p', { class: 'ok effective' }), 'case.agreement.effective'));
    } else if (unsigned.length) {
      box.append(tr(h('p', { class: 'pending' }), 'case.agreement.waiting', { names: unsigned.join('、') }));
    }
    box.append(
      tr(
        h('button', {
          type: 'button',
          class: mustSign ? 'primary' : '',
          'data-action': 'read-agreement',
          onclick: () => this.readAgreement(me, current, mustSign),
        }),
        mustSign ? 'case.agreement.read_and_sign' : 'case.agreement.read',
      ),
      ' ',
      tr(h('button', { type: 'button', 'data-action': 'document', onclick: () => this.download(`${this.base()}/agreement/document`, 'agreement') }), 'case.agreement.document'),
    );
    return box;
  }

  /** A signer as the agreement names them: 申请人 / 被申请人 / 调解员. */
  signerStanding(signature) {
    const m = this.view.members.find((x) => x.id === signature.person);
    return m ? this.standing(m) : t(`role.${signature.role}`);
  }

  /**
   * The agreement to read before signing: the whole text at a readable size, over the whole
   * page (full width on a laptop, the phone's width on a phone), with its version and hash
   * beside the buttons. "Sign" is enabled once the end of the text has been on screen.
   */
  readAgreement(me, version, mustSign) {
    const end = h('p', { class: 'agreement-end' }, tr(h('span'), 'case.agreement.end'));
    const text = h('div', { class: 'agreement-text', tabindex: 0 }, version.text, end);
    const sign = tr(h('button', { type: 'button', class: 'primary', 'data-action': 'sign', disabled: true }), 'case.agreement.sign');
    const hint = tr(h('p', { class: 'pending read-hint', role: 'status' }), 'case.agreement.scroll_to_end');
    const close = tr(h('button', { type: 'button', 'data-action': 'close-reader' }), 'case.agreement.close');
    const actions = h('div', { class: 'reader-actions' });
    const footer = h(
      'footer',
      {},
      h('p', { class: 'reader-version' }, tr(h('span'), 'case.agreement.version', { version: version.version }), ' · SHA-256：', h('code', { class: 'sha256' }, version.sha256)),
      mustSign ? hint : null,
      actions,
    );
    const dialog = h('dialog', { class: 'reader', 'aria-labelledby': 'reader-title' }, h('header', {}, tr(h('h2', { id: 'reader-title' }), 'case.agreement.title'), close), text, footer);
    const done = () => {
      observer.disconnect();
      dialog.close();
      dialog.remove();
    };
    close.onclick = done;
    dialog.addEventListener('close', () => dialog.remove());
    const observer = new IntersectionObserver(
      (entries) => {
        if (entries.some((e) => e.isIntersecting)) {
          sign.disabled = false;
          hint.hidden = true;
        }
      },
      { root: text, threshold: 1 },
    );
    if (mustSign) {
      sign.onclick = () => {
        done();
        this.act(() =>
          this.api('PUT', `${this.base()}/agreement/signatures/${me.id}`, { version: version.version, sha256: version.sha256 }),
        );
      };
      actions.append(sign);
      if (me.role === 'party') {
        actions.append(
          ' ',
          tr(
            h('button', {
              type: 'button',
              class: 'danger',
              'data-action': 'refuse',
              onclick: async () => {
                const answer = await ask({
                  title: 'case.agreement.refuse',
                  text: 'case.agreement.refuse.confirm',
                  fields: [{ name: 'reason', label: 'case.agreement.refuse.reason', type: 'textarea' }],
                  confirm: 'case.agreement.refuse',
                  danger: true,
                });
                if (!answer) return;
                done();
                this.act(() => this.api('PUT', `${this.base()}/agreement/refusals/${me.id}`, { version: version.version, reason: answer.reason }));
              },
            }),
            'case.agreement.refuse',
          ),
        );
      }
      observer.observe(end);
    }
    document.body.append(dialog);
    dialog.showModal();
    text.focus();
  }

  /**
   * Judicial confirmation (司法确认): each party applies within 30 days of the agreement taking
   * effect (CPL 205, counted as CPL 85 counts); the court's progress comes back through the
   * bridge and reaches this page as a `case.updated` event.
   */
  renderConfirmation(me) {
    const box = h('section', { class: 'confirmation' });
    box.append(tr(h('h3', {}), 'case.confirmation.title'));
    const c = this.view.confirmation;
    const status = c.docket?.status ?? 'received';
    const final = ['not_accepted', 'confirmed', 'rejected', 'withdrawn'].includes(status);
    const name = (id) => this.nameOf(id) ?? id;
    if (!c.submitted) {
      box.append(tr(h('p', { class: 'apply-by' }), 'case.confirmation.apply_by', { date: dueText(this.view.confirmation_apply_by) }));
      if (c.applicants.length) {
        box.append(tr(h('p', { class: 'applicants' }), 'case.confirmation.applied', { names: c.applicants.map(([p]) => name(p)).join('、') }));
      }
      if (me?.role === 'party' && !c.applicants.some(([p]) => p === me.id) && Date.now() <= this.view.confirmation_apply_by) {
        box.append(
          tr(
            h('button', {
              type: 'button',
              class: 'primary',
              'data-action': 'apply-confirmation',
              onclick: () => this.act(() => this.api('PUT', `${this.base()}/members/${me.id}/confirmation-application`)),
            }),
            'case.confirmation.apply',
          ),
        );
      }
      return box;
    }
    const last = c.updates[c.updates.length - 1];
    const shown = status === 'received' && !this.view.confirmation_delivered ? 'sending' : status;
    box.append(tr(h('p', { class: `court-status status-${shown}`, 'data-status': shown }), `case.confirmation.status.${shown}`));
    const action = last?.action ?? {};
    if (action.ruling_number) {
      box.append(
        h('p', { class: 'court-detail' }, tr(h('span'), 'case.confirmation.ruling_number'), h('strong', {}, action.ruling_number)),
        h('p', { class: 'court-ruling' }, action.ruling_text),
      );
    } else if (action.grounds || action.what) {
      box.append(h('p', { class: 'court-detail' }, action.grounds ?? action.what));
    }
    if (last?.judge_name) box.append(tr(h('p', { class: 'court-judge' }), 'case.confirmation.judge', { name: last.judge_name, at: timeText(last.at) }));
    if (last?.due_at && !final) box.append(tr(h('p', { class: 'court-due' }), 'case.confirmation.due', { date: dueText(last.due_at) }));
    if (last?.document) {
      box.append(
        tr(h('button', { type: 'button', 'data-action': 'ruling-document', onclick: () => this.download(`${this.base()}/confirmation/ruling`, 'ruling') }), 'case.confirmation.ruling_document'),
      );
    }
    if (me?.role === 'party' && !final && !c.withdrawal) {
      box.append(
        tr(
          h('button', {
            type: 'button',
            class: 'danger',
            'data-action': 'withdraw-confirmation',
            onclick: async () => {
              const answer = await ask({ title: 'case.confirmation.withdraw', text: 'case.confirmation.withdraw.confirm', confirm: 'case.confirmation.withdraw', danger: true });
              if (answer) this.act(() => this.api('POST', `${this.base()}/members/${me.id}/confirmation-withdrawal`));
            },
          }),
          'case.confirmation.withdraw',
        ),
      );
    }
    return box;
  }

  /** The mediator closes the mediation: success, failure (转立案) or termination (ODR-Med 25). */
  renderOutcome(session) {
    const box = h('section', { class: 'outcome-actions' });
    box.append(tr(h('h3', {}), 'case.outcome.title'));
    const record = (outcome) => this.act(() => this.api('POST', `${this.base()}/outcome`, outcome));
    const success = tr(
      h('button', { type: 'button', class: 'primary', 'data-action': 'outcome-success', onclick: () => record({ result: 'success' }) }),
      'case.outcome.success',
    );
    success.disabled = !this.view.agreement.effective_at;
    const failure = tr(
      h('button', {
        type: 'button',
        'data-action': 'outcome-failure',
        onclick: async () => {
          const answer = await ask({
            title: 'case.outcome.failure',
            fields: [{ name: 'reason', label: 'case.outcome.reason', type: 'textarea', required: true }],
            confirm: 'case.outcome.failure',
          });
          if (answer) record({ result: 'failure', reason: answer.reason });
        },
      }),
      'case.outcome.failure',
    );
    // Ground 1 is success and ground 7 a party's own refusal: neither is chosen here.
    const terminate = tr(
      h('button', {
        type: 'button',
        class: 'danger',
        'data-action': 'outcome-terminate',
        onclick: async () => {
          const answer = await ask({
            title: 'case.outcome.terminate',
            fields: [
              { name: 'ground', label: 'case.outcome.ground', options: [2, 3, 4, 5, 6, 8].map((g) => [String(g), `case.ground.${g}`]), required: true },
              { name: 'note', label: 'case.outcome.note', type: 'textarea' },
            ],
            confirm: 'case.outcome.terminate',
            danger: true,
          });
          if (answer) record({ result: 'termination', ground: Number(answer.ground), note: answer.note });
        },
      }),
      'case.outcome.terminate',
    );
    box.append(h('p', {}, success, ' ', failure, ' ', terminate));
    if (session && session.phase !== 'ended') {
      box.append(
        tr(
          h('button', { type: 'button', 'data-action': 'end-session', onclick: () => this.act(() => this.api('POST', `${this.sessionPath()}/end`)) }),
          'case.session.end',
        ),
      );
    }
    return box;
  }

  /** Downloads a document (a PDF), fetched with the token: documents are not public links. */
  async download(path, name) {
    try {
      const response = await fetch(`/api${path}`, { headers: { authorization: `Bearer ${this.token}` } });
      if (!response.ok) {
        const body = await response.json().catch(() => ({}));
        throw Object.assign(new Error(body.error?.message ?? ''), { code: body.error?.code, details: body.error?.details });
      }
      const url = URL.createObjectURL(await response.blob());
      const link = h('a', { href: url, download: `${this.view.number}-${t(`case.document.${name}`)}.pdf` });
      document.body.append(link);
      link.click();
      link.remove();
      setTimeout(() => URL.revokeObjectURL(url), 60_000);
    } catch (e) {
      this.note(e);
    }
  }
}
