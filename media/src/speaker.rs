//! Active-speaker detection from RFC 6464 audio levels.
//!
//! Every audio packet carries its sender's level in -dBov (0 loudest, 127 silence). Over each
//! window we average every publisher's level; the loudest publisher above the speech threshold
//! becomes the active speaker, but only if it beats the current speaker by a margin or the
//! current one went quiet — so two people talking at once do not make the highlight flicker.

use std::collections::HashMap;

use crate::policy::ParticipantId;

/// Louder than this (in -dBov) counts as speech.
const SPEECH_THRESHOLD: f32 = 50.0;
/// A challenger must be this much louder (dB) to take over from a speaker who is still talking.
const TAKEOVER_MARGIN: f32 = 6.0;

#[derive(Debug, Default)]
struct Window {
    sum: u64,
    count: u32,
}

/// One room's detector.
#[derive(Debug, Default)]
pub(crate) struct SpeakerDetector {
    windows: HashMap<ParticipantId, Window>,
    current: Option<ParticipantId>,
}

impl SpeakerDetector {
    /// Records one audio packet's level (-dBov).
    pub(crate) fn observe(&mut self, who: &ParticipantId, level: i8) {
        let level = u64::from(level.unsigned_abs().min(127));
        if let Some(w) = self.windows.get_mut(who) {
            w.sum += level;
            w.count += 1;
        } else {
            self.windows.insert(
                who.clone(),
                Window {
                    sum: level,
                    count: 1,
                },
            );
        }
    }

    /// Forgets a participant (left, or no longer heard).
    pub(crate) fn forget(&mut self, who: &ParticipantId) -> Option<Option<ParticipantId>> {
        self.windows.remove(who);
        if self.current.as_ref() == Some(who) {
            self.current = None;
            return Some(None);
        }
        None
    }

    /// Closes the window: `Some(new)` when the active speaker changed (`Some(None)`: nobody).
    pub(crate) fn tick(&mut self) -> Option<Option<ParticipantId>> {
        let averages: Vec<(ParticipantId, f32)> = self
            .windows
            .drain()
            .filter(|(_, w)| w.count > 0)
            .map(|(who, w)| (who, w.sum as f32 / w.count as f32))
            .filter(|(_, avg)| *avg < SPEECH_THRESHOLD)
            .collect();
        let loudest = averages.iter().min_by(|a, b| a.1.total_cmp(&b.1)).cloned();
        let current_level = self
            .current
            .as_ref()
            .and_then(|c| averages.iter().find(|(who, _)| who == c).map(|(_, l)| *l));
        let next = match (loudest, current_level) {
            (None, _) => None,
            (Some((who, _)), None) => Some(who),
            (Some((who, level)), Some(current)) => {
                if level + TAKEOVER_MARGIN < current {
                    Some(who)
                } else {
                    self.current.clone()
                }
            }
        };
        // Silence keeps the last speaker highlighted: people look at whoever spoke last.
        let next = next.or_else(|| self.current.clone());
        if next != self.current {
            self.current = next.clone();
            Some(next)
        } else {
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(s: &str) -> ParticipantId {
        ParticipantId::from(s)
    }

    #[test]
    fn the_loudest_speaker_wins_and_silence_keeps_them() {
        let mut d = SpeakerDetector::default();
        for _ in 0..10 {
            d.observe(&id("a"), -30);
            d.observe(&id("b"), -127);
        }
        assert_eq!(d.tick(), Some(Some(id("a"))));
        d.observe(&id("a"), -127);
        assert_eq!(d.tick(), None, "silence does not clear the highlight");
    }

    #[test]
    fn a_challenger_needs_a_margin_while_the_speaker_still_talks() {
        let mut d = SpeakerDetector::default();
        d.observe(&id("a"), -30);
        assert_eq!(d.tick(), Some(Some(id("a"))));
        d.observe(&id("a"), -30);
        d.observe(&id("b"), -28);
        assert_eq!(d.tick(), None, "2 dB louder is not enough");
        d.observe(&id("a"), -30);
        d.observe(&id("b"), -20);
        assert_eq!(d.tick(), Some(Some(id("b"))));
        d.observe(&id("a"), -25);
        assert_eq!(d.tick(), Some(Some(id("a"))), "the old speaker went quiet");
    }

    #[test]
    fn a_leaver_stops_being_the_speaker() {
        let mut d = SpeakerDetector::default();
        d.observe(&id("a"), -10);
        d.tick();
        assert_eq!(d.forget(&id("a")), Some(None));
        assert_eq!(d.forget(&id("b")), None);
    }
}
