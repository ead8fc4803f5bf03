//! What a session's recording may capture (录音录像).
//!
//! A room's recording policy is data: `off`, `audio` or `audio_video`. The server's
//! configuration sets the most any room may allow; a room may allow less; the mediator starts
//! recording in any mode the room allows.

use serde::{Deserialize, Serialize};

/// What is recorded.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    Serialize,
    Deserialize,
    utoipa::ToSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum RecordingMode {
    /// Nothing.
    Off,
    /// Sound only (录音).
    Audio,
    /// Sound and pictures (录音录像).
    AudioVideo,
}

impl RecordingMode {
    /// The stored and wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            RecordingMode::Off => "off",
            RecordingMode::Audio => "audio",
            RecordingMode::AudioVideo => "audio_video",
        }
    }
}

impl std::str::FromStr for RecordingMode {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "off" => Ok(RecordingMode::Off),
            "audio" => Ok(RecordingMode::Audio),
            "audio_video" => Ok(RecordingMode::AudioVideo),
            other => Err(format!(
                "recording mode {other:?}: use off, audio or audio_video"
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modes_order_and_parse() {
        assert!(RecordingMode::Off < RecordingMode::Audio);
        assert!(RecordingMode::Audio < RecordingMode::AudioVideo);
        for m in [
            RecordingMode::Off,
            RecordingMode::Audio,
            RecordingMode::AudioVideo,
        ] {
            assert_eq!(m.as_str().parse::<RecordingMode>(), Ok(m));
        }
        assert!("video".parse::<RecordingMode>().is_err());
    }
}
