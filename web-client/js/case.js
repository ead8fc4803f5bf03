// The mediation panel next to the call: start-of-session checks (a party's warning and
// consents; the mediator's identity checks and "start"), private rooms, minutes and the
// agreement with its signatures. Every action is an API call the server checks against the
// permission matrix; this page only shows what the server says (`GET /api/cases/current`,
// refreshed on `case.updated` and `minutes.updated`).

import { dueText, t } from './i18n.js';
import { h, tr } from './ui.js';

const SAVE_DELAY_MS = 800;

export class CasePanel {
  /** `token`: the session token; `you()`: the participant info of this page's person. */
  constructor(token, you) {
    this.token = token;
    this.you = you;
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
      throw error;
    }
    return value;
  }

  /** Loads the case; resolves to false when this room is no case's session. */
  async load() {
    try {
      this.view = await this.api('GET', '/cases/current');
    } catch (e) {
      if (e.code === 'not_found') return false;
      throw e;
    }
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
      const n = this.root.querySelector('.case-note');
      n.textContent = t('case.failed', { reason: e.message });
      n.hidden = false;
    }
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

  /** A party's (or agent's) own start-of-session card: warning, consents, identity status. */
  renderOwnChecks(me, session) {
    const checks = session?.checks[me.id] ?? {};
    const done =
      checks.identity?.passed &&
      checks.warning_acknowledged_at &&
      (me.role !== 'party' || (checks.online_mediation && checks.recording));
    // Once in session, a completed card folds away: the call needs the room.
    const folded = done && (session?.phase === 'in_session' || session?.phase === 'ended');
    const card = folded
      ? h('details', { class: 'own-checks' }, tr(h('summary', { class: 'ok' }), 'case.checks.done'))
      : h('section', { class: 'own-checks', 'aria-labelledby': 'own-checks-title' });
    if (!folded) card.append(tr(h('h3', { id: 'own-checks-title' }), 'case.checks.title'));
    card.append(
      checks.identity
        ? tr(h('p', { class: checks.identity.passed ? 'ok' : 'bad' }), 'case.identity.done', {
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
            onclick: () => {
              const days = Number(prompt(t('case.extension.days')));
              if (days) this.act(() => this.api('POST', `${this.base()}/deadline/extensions`, { days }));
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

  /** The mediator's table of everyone's checks, identity buttons and "start". */
  renderChecksTable(session) {
    const box = h('section', { class: 'checks' });
    box.append(tr(h('h3', {}), 'case.checks.everyone'));
    const missing = this.view.missing_checks.find((m) => m.session === this.view.session);
    const present = new Set(missing?.present ?? []);
    const rows = this.view.members
      .filter((m) => m.role !== 'mediator')
      .map((m) => {
        const c = session?.checks[m.id] ?? {};
        const mark = (v) => (v === undefined || v === null ? '—' : v ? '✓' : '✗');
        const cell = h('td', {});
        if (c.identity) {
          cell.append(`${mark(c.identity.passed)} ${t(`case.method.${c.identity.method}`)}`);
        } else if (session?.phase === 'lobby_open' || session?.phase === 'in_session') {
          for (const method of ['id_document_video', 'face_recognition', 'offline']) {
            cell.append(
              tr(
                h('button', {
                  type: 'button',
                  class: 'mod',
                  'data-action': `verify-${m.id}-${method}`,
                  onclick: () => {
                    const note = method === 'offline' ? prompt(t('case.identity.offline_note')) ?? '' : '';
                    this.act(() =>
                      this.api('PUT', `${this.sessionPath()}/members/${m.id}/identity`, { method, passed: true, note }),
                    );
                  },
                }),
                `case.method.${method}`,
              ),
              ' ',
            );
          }
        }
        return h(
          'tr',
          { dataset: { person: m.id } },
          h('td', {}, `${m.name} · ${t(`role.${m.role}`)}${present.has(m.id) ? '' : ` (${t('case.absent')})`}`),
          cell,
          h('td', {}, mark(c.warning_acknowledged_at ? true : m.role === 'party' || m.role === 'agent' ? undefined : null)),
          h('td', {}, m.role === 'party' ? `${mark(c.online_mediation?.given)} / ${mark(c.recording?.given)}` : ''),
        );
      });
    box.append(
      h(
        'table',
        {},
        h(
          'thead',
          {},
          h('tr', {}, ...['case.col.person', 'case.col.identity', 'case.col.warning', 'case.col.consents'].map((k) => tr(h('th', {}), k))),
        ),
        h('tbody', {}, ...rows),
      ),
    );
    if (session?.phase === 'scheduled') {
      box.append(
        tr(h('button', { type: 'button', 'data-action': 'open-lobby', onclick: () => this.act(() => this.api('POST', `${this.sessionPath()}/lobby`)) }), 'case.open_lobby'),
      );
    }
    if (session?.phase === 'lobby_open') {
      if (missing?.missing.length) {
        box.append(h('ul', { class: 'missing' }, ...missing.missing.map((text) => h('li', {}, text))));
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
    for (const side of ['applicant', 'respondent']) {
      const where = session.sides[side];
      box.append(
        h('p', {}, tr(h('span', {}), `case.side.${side}`), ': ', tr(h('strong', {}), where === 'joint' ? 'case.where.joint' : 'case.where.private')),
      );
      box.append(
        where === 'joint'
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
      for (const to of ['joint', 'private:applicant', 'private:respondent']) {
        const key = to === 'joint' ? 'case.go.joint' : `case.go.${to.slice('private:'.length)}`;
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
    if (session?.minutes_replaced_by_recording) box.append(tr(h('p', { class: 'ok' }), 'case.minutes.replaced'));
    const text = this.minutes?.text ?? '';
    if (me?.role === 'mediator' && session?.phase !== 'ended') {
      const area = h('textarea', { id: 'minutes-editor', rows: 6, 'aria-label': t('case.minutes.title') });
      area.value = text;
      area.addEventListener('input', () => this.scheduleSave(area));
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
      if (me?.role === 'party' && this.minutes?.revision > 0) {
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
        const saved = this.root.querySelector('.minutes .saved');
        if (saved) tr(saved, 'case.minutes.revision', { revision: this.minutes.revision });
      } catch (e) {
        const n = this.root.querySelector('.case-note');
        n.textContent = t('case.failed', { reason: e.message });
        n.hidden = false;
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
      box.append(
        tr(h('label', { for: 'agreement-terms' }), 'case.agreement.terms'),
        terms,
        tr(
          h('button', {
            type: 'button',
            'data-action': 'draft',
            onclick: () => this.act(() => this.api('POST', `${this.base()}/agreement/versions`, { terms: terms.value })),
          }),
          'case.agreement.draft',
        ),
      );
    }
    if (!current) {
      box.append(tr(h('p', {}), 'case.agreement.none'));
      return box;
    }
    box.append(
      tr(h('p', { class: 'version' }), 'case.agreement.version', { version: current.version }),
      h('pre', { class: 'agreement-text' }, current.text),
      h('p', { class: 'hash' }, 'SHA-256: ', h('code', { class: 'sha256' }, current.sha256)),
    );
    const signed = agreement.signatures.filter((s) => s.version === current.version);
    box.append(
      h(
        'ul',
        { class: 'signatures' },
        ...signed.map((s) => h('li', {}, `✓ ${s.name} · ${t(`role.${s.role}`)} · ${new Date(s.at).toLocaleString()}`)),
      ),
    );
    if (agreement.effective_at) {
      box.append(tr(h('p', { class: 'ok effective' }), 'case.agreement.effective'));
    } else if (this.view.unsigned.includes(me?.id) && !this.view.outcome) {
      box.append(
        tr(
          h('button', {
            type: 'button',
            class: 'primary',
            'data-action': 'sign',
            onclick: () =>
              this.act(() =>
                this.api('PUT', `${this.base()}/agreement/signatures/${me.id}`, {
                  version: current.version,
                  sha256: current.sha256,
                }),
              ),
          }),
          'case.agreement.sign',
        ),
        ' ',
      );
      if (me.role === 'party') {
        box.append(
          tr(
            h('button', {
              type: 'button',
              class: 'danger',
              'data-action': 'refuse',
              onclick: () => {
                if (!confirm(t('case.agreement.refuse.confirm'))) return;
                this.act(() => this.api('PUT', `${this.base()}/agreement/refusals/${me.id}`, { version: current.version }));
              },
            }),
            'case.agreement.refuse',
          ),
        );
      }
    }
    box.append(
      ' ',
      tr(h('button', { type: 'button', 'data-action': 'document', onclick: () => this.openDocument() }), 'case.agreement.document'),
    );
    return box;
  }

  /**
   * Judicial confirmation (司法确认): each party applies within 30 days of the agreement taking
   * effect; the court's progress comes back through the bridge. The room has usually closed by
   * then (nobody announces changes), so the page looks again every 10 s until the court rules.
   */
  renderConfirmation(me) {
    const box = h('section', { class: 'confirmation' });
    box.append(tr(h('h3', {}), 'case.confirmation.title'));
    const c = this.view.confirmation;
    const status = c.docket?.status ?? 'received';
    const final = ['not_accepted', 'confirmed', 'rejected', 'withdrawn'].includes(status);
    if (!final && !this.poll) this.poll = setInterval(() => this.load().catch(() => {}), 10_000);
    if (final && this.poll) {
      clearInterval(this.poll);
      this.poll = null;
    }
    const when = (ms) => new Date(ms).toLocaleString();
    const name = (id) => this.view.members.find((m) => m.id === id)?.name ?? id;
    if (!c.submitted) {
      box.append(tr(h('p', { class: 'apply-by' }), 'case.confirmation.apply_by', { date: when(this.view.confirmation_apply_by) }));
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
    const detail = action.ruling_number
      ? `${action.ruling_number}：${action.ruling_text}`
      : action.grounds ?? action.what ?? '';
    if (detail) box.append(h('p', { class: 'court-detail' }, detail));
    if (last?.judge_name) box.append(tr(h('p', { class: 'court-judge' }), 'case.confirmation.judge', { name: last.judge_name, at: when(last.at) }));
    if (last?.due_at) box.append(tr(h('p', { class: 'court-due' }), 'case.confirmation.due', { date: when(last.due_at) }));
    if (me?.role === 'party' && !final && !c.withdrawal) {
      box.append(
        tr(
          h('button', {
            type: 'button',
            class: 'danger',
            'data-action': 'withdraw-confirmation',
            onclick: () => {
              if (!confirm(t('case.confirmation.withdraw.confirm'))) return;
              this.act(() => this.api('POST', `${this.base()}/members/${me.id}/confirmation-withdrawal`));
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
        onclick: () => {
          const reason = prompt(t('case.outcome.reason'));
          if (reason) record({ result: 'failure', reason });
        },
      }),
      'case.outcome.failure',
    );
    const ground = h(
      'select',
      { id: 'termination-ground', 'aria-label': t('case.outcome.ground') },
      ...[1, 2, 3, 4, 5, 6, 7, 8].map((g) => tr(h('option', { value: String(g) }), `case.ground.${g}`)),
    );
    const terminate = tr(
      h('button', {
        type: 'button',
        class: 'danger',
        'data-action': 'outcome-terminate',
        onclick: () => record({ result: 'termination', ground: Number(ground.value), note: prompt(t('case.outcome.note')) ?? '' }),
      }),
      'case.outcome.terminate',
    );
    box.append(h('p', {}, success, ' ', failure), h('p', {}, ground, ' ', terminate));
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

  /** The print-ready document, fetched with the token (it is not a public link). */
  async openDocument() {
    const response = await fetch(`/api${this.base()}/agreement/document`, {
      headers: { authorization: `Bearer ${this.token}` },
    });
    const url = URL.createObjectURL(new Blob([await response.text()], { type: 'text/html' }));
    window.open(url, '_blank', 'noopener');
  }
}
