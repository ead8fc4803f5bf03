//! What the SFU takes from a client's offer: the lines the client opened are for publishing.
//!
//! The SFU sends media to a participant only on lines it opens itself (one per forwarded track,
//! in its own offers). A client that offers its camera `sendrecv`, as browsers do by default,
//! would otherwise get an answer that echoes `sendrecv` with the client's own stream id, and
//! hold a phantom remote track that never carries media. So before the offer is applied, each
//! `sendrecv` line the client opened becomes `sendonly` (answered `recvonly`). Lines the SFU
//! opened are left as the client describes them, and so is a client's `recvonly` line: a
//! listener with nothing to send offers only such lines, and an offer whose every line is
//! inactive would bring up no connection at all (docs/protocol.md says what clients do).

use std::collections::HashSet;

/// Most media lines a client may open itself: a microphone, a camera, a screen and its sound,
/// with room to spare. Each line it publishes becomes a track offered to everyone else in the
/// room, so without a bound one 60 KB offer of ~2,000 lines would make every other participant
/// negotiate 2,000 lines (an amplifier, not a conference).
pub const MAX_OWN_LINES: usize = 8;

/// The client's offer with its own lines narrowed to publishing; `ours` are the mids of the
/// lines the SFU opened. `None` when the client opened more than [`MAX_OWN_LINES`] lines.
pub(crate) fn publishing_only(sdp: &str, ours: &HashSet<String>) -> Option<String> {
    let mut out = String::with_capacity(sdp.len());
    let mut own_lines = 0;
    // Media sections start at `m=` lines; the session part before the first has none of ours.
    let mut section: Vec<&str> = Vec::new();
    let mut flush = |section: &mut Vec<&str>, out: &mut String| {
        let is_media = section.first().is_some_and(|l| l.starts_with("m="));
        let theirs = is_media
            && !section.iter().any(|l| {
                l.trim_end()
                    .strip_prefix("a=mid:")
                    .is_some_and(|mid| ours.contains(mid))
            });
        // A stopped line (port 0) stays in every later offer but carries nothing: a client that
        // shared its screen ten times is not over the limit.
        let stopped = section
            .first()
            .is_some_and(|l| l.split(' ').nth(1) == Some("0"));
        own_lines += usize::from(theirs && !stopped);
        for line in section.drain(..) {
            let (body, end) = split_line_end(line);
            let body = match body {
                "a=sendrecv" if theirs => "a=sendonly",
                other => other,
            };
            out.push_str(body);
            out.push_str(end);
        }
    };
    for line in sdp.split_inclusive('\n') {
        if line.starts_with("m=") {
            flush(&mut section, &mut out);
        }
        section.push(line);
    }
    flush(&mut section, &mut out);
    (own_lines <= MAX_OWN_LINES).then_some(out)
}

/// A line and its ending (`\r\n`, `\n` or nothing).
fn split_line_end(line: &str) -> (&str, &str) {
    let body = line.trim_end_matches(['\r', '\n']);
    (body, &line[body.len()..])
}

#[cfg(test)]
mod tests {
    use super::*;

    const OFFER: &str = "v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\ns=-\r\na=group:BUNDLE 0 1 2 3\r\n\
        m=audio 9 UDP/TLS/RTP/SAVPF 111\r\na=mid:0\r\na=sendrecv\r\na=msid:me me-audio\r\n\
        m=video 9 UDP/TLS/RTP/SAVPF 96\r\na=mid:1\r\na=recvonly\r\n\
        m=video 9 UDP/TLS/RTP/SAVPF 96\r\na=mid:2\r\na=sendonly\r\n\
        m=audio 9 UDP/TLS/RTP/SAVPF 111\r\na=mid:srv7\r\na=recvonly\r\n";

    #[test]
    fn the_clients_own_lines_are_narrowed_to_publishing_and_ours_are_kept() {
        let ours: HashSet<String> = ["srv7".to_string()].into();
        let out = publishing_only(OFFER, &ours).expect("three lines of its own");
        let sections: Vec<&str> = out.split("m=").collect();
        assert!(sections[1].contains("a=sendonly") && !sections[1].contains("a=sendrecv"));
        assert!(
            sections[2].contains("a=recvonly"),
            "a listener's line brings the connection up"
        );
        assert!(sections[3].contains("a=sendonly"), "unchanged");
        assert!(
            sections[4].contains("a=recvonly"),
            "the SFU's own line stays as it is"
        );
        // Nothing else moves: the same lines, the same endings.
        assert_eq!(out.len(), OFFER.len());
        assert_eq!(out.lines().count(), OFFER.lines().count());
        assert!(out.ends_with("a=recvonly\r\n"));
        // Bare `\n` endings are kept too.
        let unix = OFFER.replace("\r\n", "\n");
        assert_eq!(
            publishing_only(&unix, &ours),
            Some(out.replace("\r\n", "\n"))
        );
    }

    #[test]
    fn an_offer_that_opens_more_lines_than_a_person_publishes_is_refused() {
        let line =
            |i: usize| format!("m=audio 9 UDP/TLS/RTP/SAVPF 111\r\na=mid:{i}\r\na=sendonly\r\n");
        let offer = |own: usize, ours: &HashSet<String>| {
            let mut sdp = "v=0\r\ns=-\r\n".to_string();
            for i in 0..own + ours.len() {
                sdp.push_str(&line(i));
            }
            publishing_only(&sdp, ours)
        };
        let none = HashSet::new();
        assert!(offer(MAX_OWN_LINES, &none).is_some());
        assert!(offer(MAX_OWN_LINES + 1, &none).is_none());
        assert!(offer(2_000, &none).is_none());
        let stopped = "m=video 0 UDP/TLS/RTP/SAVPF 96\r\na=mid:s\r\na=inactive\r\n".repeat(20);
        let mut sdp = "v=0\r\ns=-\r\n".to_string() + &stopped;
        sdp.push_str(&line(1));
        assert!(
            publishing_only(&sdp, &none).is_some(),
            "stopped lines do not count"
        );
        // The SFU's own lines (one per forwarded track) do not count against the client.
        let ours: HashSet<String> = (MAX_OWN_LINES..MAX_OWN_LINES + 40)
            .map(|i| i.to_string())
            .collect();
        assert!(offer(MAX_OWN_LINES, &ours).is_some());
    }
}
