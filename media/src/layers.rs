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
}
