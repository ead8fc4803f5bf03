// Says a refusal from the server in the page's language, with people's names: from the error's
// stable `code` and its `details` (tagged by `reason`; docs/protocol.md, "Errors"), never from
// the English `message`, which is for logs and programs.

import { dueText, t } from './i18n.js';
import { placeKey } from './place.js';

/** A translation if the table has one for `key`. */
function known(key, vars) {
  const text = t(key, vars);
  return text === key ? null : text;
}


/**
 * The facts of `details` made readable: people named (the name the server sent, else the one
 * `nameOf` knows), roles, checks, places, phases and dates in words.
 */
function vars(d, nameOf) {
  const name = (person, given) => given || nameOf?.(person) || person;
  const out = { ...d };
  if (d.person !== undefined || d.name !== undefined) out.name = name(d.person, d.name);
  if (d.party !== undefined) out.party = name(d.party);
  for (const field of ['role', 'case_role']) if (d[field]) out[field] = t(`role.${d[field]}`);
  if (d.act) out.act = t(`act.${d.act}`);
  if (d.field) out.field = t(`field.${d.field}`);
  for (const field of ['phase', 'needed']) if (d[field]) out[field] = t(`case.phase.${d[field]}`);
  if (d.action) out.action = t(`action.${d.action}`);
  if (d.outcome) out.outcome = t(`case.outcome.${d.outcome.result}`);
  if (d.grant) out.grant = t(`grant.${d.grant}`);
  if (d.limit) out.limit = t(`recording.mode.${d.limit}`);
  if (d.side) out.side = t(`case.side.${d.side}`);
  if (d.place) out.place = t(placeKey(d.place));
  if (typeof d.apply_by === 'number') out.apply_by = dueText(d.apply_by);
  if (Array.isArray(d.missing)) {
    out.list = d.missing.map((m) => `${name(m.person, m.name)}：${t(`check.${m.check}`)}`).join('；');
  }
  return out;
}

/**
 * What to tell a person about `error` ({code, details}: a SignalingError, or an API error's
 * body), in their language.
 */
export function describe(error, nameOf) {
  const d = error?.details;
  if (d?.reason) {
    // A range with no real upper end (a claim) is said as "at least".
    const reason = d.reason === 'out_of_range' && d.max > 1e12 ? 'at_least' : d.reason;
    const text = known(`reason.${reason}`, vars(d, nameOf));
    if (text) return text;
  }
  return known(`error.${error?.code}`) ?? t('error.unknown');
}
