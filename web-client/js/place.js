// Where a person stands, as the server writes it (docs/protocol.md): the lobby, the joint room,
// or one side's private room (背对背). Pages read places through here and name them through
// i18n; none compares the wire text itself.

/** The waiting room. */
export const LOBBY = 'lobby';
/** The joint room. */
export const JOINT = 'joint';
/** The sides that each have a private room. */
export const SIDES = ['applicant', 'respondent'];

const PRIVATE = 'private:';

/** A side's private room. */
export function privateRoom(side) {
  return `${PRIVATE}${side}`;
}

/** Whether `place` is a private room. */
export function isPrivate(place) {
  return typeof place === 'string' && place.startsWith(PRIVATE);
}

/** The key after `private:` (a side, in a case's session), or null outside a private room. */
export function privateKey(place) {
  return isPrivate(place) ? place.slice(PRIVATE.length) : null;
}

/** Where the mediator (and an assisting judge) can go during a session. */
export const STAFF_PLACES = [JOINT, ...SIDES.map(privateRoom)];

/** The translation key (and values) naming a place: the lobby, the joint room, a private room. */
export function placeLabel(place) {
  const key = privateKey(place);
  if (SIDES.includes(key)) return [`room.private.${key}`];
  if (key !== null) return ['room.private', { key }];
  if (place === LOBBY) return ['lobby.title'];
  return ['room.title'];
}

/** The translation key naming a place (a side's private room by its side). */
export function placeKey(place) {
  const [key] = placeLabel(place);
  return key === 'room.private' ? 'room.title' : key;
}
