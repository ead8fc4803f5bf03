//! tiaojie's media plane.
//!
//! Map of the crate:
//! - [`policy`]: the forwarding policy — who receives whose audio and video — as a plain state
//!   machine: lobby, joint room, private rooms (背对背), moderator blocks, observers, audio-only
//!   subscribers. Updates return the forwarding paths that start or stop, so the SFU applies a
//!   move between rooms without touching anyone's connection.
//!
//! The SFU itself (str0m over one UDP port, forwarding, keyframes, simulcast, bandwidth, the
//! recorder tap) lands here with the media issue. This crate is given opaque participant ids and
//! policies, never case data, names or roles.

pub mod policy;

pub use policy::{Edge, ForwardingPolicy, Kind, ParticipantId, Space, Standing};
