//! Simulcast layer choice for one subscriber's video track.
//!
//! Layers are ranked by the bitrate the publisher actually sends on them (rid names carry no
//! meaning we can trust). The subscriber gets the best layer that fits both its share of the
//! bandwidth estimate and the largest size it asked for; if none fits, the smallest layer —
//! a low picture beats a frozen one.

/// What the SFU knows about one incoming layer.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct LayerInfo {
    /// Measured bitrate, bits per second (0 while unknown or paused).
    pub bitrate_bps: u64,
    /// Frame height from the last keyframe, if seen.
    pub height: Option<u32>,
}

/// Index into `layers` of the layer to forward, or `None` when `layers` is empty.
/// `budget_bps`: this track's share of the bandwidth estimate (`None`: unknown, no limit).
pub(crate) fn choose(
    layers: &[LayerInfo],
    budget_bps: Option<u64>,
    max_height: Option<u32>,
) -> Option<usize> {
    // Paused or not yet measured layers cannot be chosen unless nothing is measured yet.
    let mut ranked: Vec<usize> = (0..layers.len())
        .filter(|i| layers[*i].bitrate_bps > 0)
        .collect();
    if ranked.is_empty() {
        return if layers.is_empty() { None } else { Some(0) };
    }
    ranked.sort_by_key(|i| layers[*i].bitrate_bps);
    let fits = |i: &usize| {
        let l = &layers[*i];
        budget_bps.is_none_or(|b| l.bitrate_bps <= b)
            && match (max_height, l.height) {
                (Some(max), Some(h)) => h <= max,
                _ => true,
            }
    };
    ranked
        .iter()
        .rev()
        .find(|i| fits(i))
        .or(ranked.first())
        .copied()
}

/// Width and height from a VP8 keyframe (RFC 6386 §9.1), if `frame` is one.
pub(crate) fn vp8_keyframe_size(frame: &[u8]) -> Option<(u32, u32)> {
    if frame.len() < 10 || frame[0] & 0x01 != 0 || frame[3..6] != [0x9d, 0x01, 0x2a] {
        return None;
    }
    let w = u32::from(u16::from_le_bytes([frame[6], frame[7]]) & 0x3fff);
    let h = u32::from(u16::from_le_bytes([frame[8], frame[9]]) & 0x3fff);
    Some((w, h))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn three() -> Vec<LayerInfo> {
        vec![
            LayerInfo {
                bitrate_bps: 1_500_000,
                height: Some(720),
            },
            LayerInfo {
                bitrate_bps: 150_000,
                height: Some(180),
            },
            LayerInfo {
                bitrate_bps: 500_000,
                height: Some(360),
            },
        ]
    }

    #[test]
    fn the_best_layer_that_fits_the_budget() {
        assert_eq!(choose(&three(), None, None), Some(0));
        assert_eq!(choose(&three(), Some(2_000_000), None), Some(0));
        assert_eq!(choose(&three(), Some(800_000), None), Some(2));
        assert_eq!(choose(&three(), Some(200_000), None), Some(1));
        assert_eq!(
            choose(&three(), Some(10_000), None),
            Some(1),
            "the smallest beats nothing"
        );
    }

    #[test]
    fn the_requested_size_caps_the_layer() {
        assert_eq!(choose(&three(), None, Some(360)), Some(2));
        assert_eq!(choose(&three(), None, Some(100)), Some(1));
    }

    #[test]
    fn paused_layers_are_skipped() {
        let mut l = three();
        l[0].bitrate_bps = 0;
        assert_eq!(choose(&l, None, None), Some(2));
        assert_eq!(choose(&[], None, None), None);
        let unmeasured = vec![
            LayerInfo {
                bitrate_bps: 0,
                height: None
            };
            2
        ];
        assert_eq!(choose(&unmeasured, None, None), Some(0));
    }

    #[test]
    fn reads_the_size_of_a_vp8_keyframe() {
        // Frame tag (keyframe, shown), start code, 640x360.
        let frame = [
            0x10, 0x02, 0x00, 0x9d, 0x01, 0x2a, 0x80, 0x02, 0x68, 0x01, 0, 0,
        ];
        assert_eq!(vp8_keyframe_size(&frame), Some((640, 360)));
        assert_eq!(vp8_keyframe_size(&frame[..5]), None);
        let mut delta = frame;
        delta[0] |= 1;
        assert_eq!(vp8_keyframe_size(&delta), None);
    }
}
