//! Who a datagram on the shared UDP port belongs to, in O(1).
//!
//! A known source address maps straight to its participant. A datagram from an unknown address
//! is only looked at if it is a STUN binding request: its USERNAME (`server-ufrag:client-ufrag`,
//! RFC 8445 §7.2.2) names our side's ICE ufrag, which we generated for exactly one participant.
//! Everything else from an unknown address is dropped unparsed, so a flood costs one hash lookup
//! per datagram and never reaches anyone's WebRTC state.

use std::collections::HashMap;
use std::net::SocketAddr;

/// A participant's slot in a shard.
pub(crate) type PeerKey = u64;

/// How many source addresses one participant may hold (ICE may try a few pairs; a roaming
/// client adds one per network). Older ones are forgotten first.
const MAX_ADDRS_PER_PEER: usize = 8;

const STUN_MAGIC_COOKIE: [u8; 4] = [0x21, 0x12, 0xa4, 0x42];
const STUN_BINDING_REQUEST: u16 = 0x0001;
const STUN_BINDING_SUCCESS: u16 = 0x0101;
const STUN_ATTR_USERNAME: u16 = 0x0006;

/// Whether `buf` is a STUN binding success response (what str0m sends to a request that passed
/// its integrity check).
pub(crate) fn is_stun_success(buf: &[u8]) -> bool {
    buf.len() >= 20
        && buf[4..8] == STUN_MAGIC_COOKIE
        && u16::from_be_bytes([buf[0], buf[1]]) == STUN_BINDING_SUCCESS
}

/// Our ICE ufrag from a STUN binding request's USERNAME, if `buf` is one.
pub(crate) fn stun_server_ufrag(buf: &[u8]) -> Option<&str> {
    if buf.len() < 20 || buf[0] & 0xc0 != 0 || buf[4..8] != STUN_MAGIC_COOKIE {
        return None;
    }
    if u16::from_be_bytes([buf[0], buf[1]]) != STUN_BINDING_REQUEST {
        return None;
    }
    let declared = usize::from(u16::from_be_bytes([buf[2], buf[3]]));
    let body = buf.get(20..20 + declared)?;
    let mut at = 0;
    while at + 4 <= body.len() {
        let kind = u16::from_be_bytes([body[at], body[at + 1]]);
        let len = usize::from(u16::from_be_bytes([body[at + 2], body[at + 3]]));
        let value = body.get(at + 4..at + 4 + len)?;
        if kind == STUN_ATTR_USERNAME {
            let username = std::str::from_utf8(value).ok()?;
            return username.split(':').next();
        }
        // Attributes are padded to four bytes.
        at += 4 + len.div_ceil(4) * 4;
    }
    None
}

/// The demux maps of one shard.
#[derive(Debug, Default)]
pub(crate) struct Demux {
    by_ufrag: HashMap<String, PeerKey>,
    by_addr: HashMap<SocketAddr, PeerKey>,
    addrs_of: HashMap<PeerKey, Vec<SocketAddr>>,
}

impl Demux {
    /// The participant a datagram from `source` belongs to.
    pub(crate) fn lookup(&self, source: SocketAddr, buf: &[u8]) -> Option<(PeerKey, bool)> {
        if let Some(key) = self.by_addr.get(&source) {
            return Some((*key, false));
        }
        let ufrag = stun_server_ufrag(buf)?;
        self.by_ufrag.get(ufrag).map(|key| (*key, true))
    }

    /// Registers a participant's local ICE ufrag.
    pub(crate) fn add_ufrag(&mut self, ufrag: String, key: PeerKey) {
        self.by_ufrag.insert(ufrag, key);
    }

    /// Binds a source address (seen in a STUN request naming `key`'s ufrag) to `key`.
    pub(crate) fn add_addr(&mut self, source: SocketAddr, key: PeerKey) {
        if let Some(previous) = self.by_addr.insert(source, key)
            && previous != key
            && let Some(list) = self.addrs_of.get_mut(&previous)
        {
            list.retain(|a| *a != source);
        }
        let list = self.addrs_of.entry(key).or_default();
        if !list.contains(&source) {
            list.push(source);
        }
        if list.len() > MAX_ADDRS_PER_PEER {
            let oldest = list.remove(0);
            self.by_addr.remove(&oldest);
        }
    }

    /// Forgets everything about `key`.
    pub(crate) fn remove(&mut self, key: PeerKey, ufrag: Option<&str>) {
        if let Some(u) = ufrag
            && self.by_ufrag.get(u) == Some(&key)
        {
            self.by_ufrag.remove(u);
        }
        for addr in self.addrs_of.remove(&key).unwrap_or_default() {
            if self.by_addr.get(&addr) == Some(&key) {
                self.by_addr.remove(&addr);
            }
        }
    }

    /// Entries held (ufrags, addresses).
    #[cfg(test)]
    pub(crate) fn len(&self) -> (usize, usize) {
        (self.by_ufrag.len(), self.by_addr.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn binding_request(username: &str) -> Vec<u8> {
        let mut attr = Vec::new();
        attr.extend_from_slice(&STUN_ATTR_USERNAME.to_be_bytes());
        attr.extend_from_slice(&(username.len() as u16).to_be_bytes());
        attr.extend_from_slice(username.as_bytes());
        while attr.len() % 4 != 0 {
            attr.push(0);
        }
        let mut msg = Vec::new();
        msg.extend_from_slice(&STUN_BINDING_REQUEST.to_be_bytes());
        msg.extend_from_slice(&(attr.len() as u16).to_be_bytes());
        msg.extend_from_slice(&STUN_MAGIC_COOKIE);
        msg.extend_from_slice(&[7; 12]);
        msg.extend_from_slice(&attr);
        msg
    }

    #[test]
    fn reads_our_ufrag_from_a_binding_request() {
        assert_eq!(
            stun_server_ufrag(&binding_request("srv1:cli")),
            Some("srv1")
        );
    }

    #[test]
    fn truncated_or_foreign_datagrams_name_nobody() {
        let good = binding_request("srv1:cli");
        for cut in 0..good.len() {
            // Every prefix either parses to the same ufrag or to nothing; none panics.
            let got = stun_server_ufrag(&good[..cut]);
            assert!(
                got.is_none() || got == Some("srv1"),
                "prefix {cut}: {got:?}"
            );
        }
        assert_eq!(stun_server_ufrag(&[0x80, 0x60, 0, 0]), None); // an RTP header
        assert_eq!(stun_server_ufrag(&[22, 254, 253, 0, 0]), None); // a DTLS record
        let mut wrong_len = good.clone();
        wrong_len[3] = 0xff;
        assert_eq!(stun_server_ufrag(&wrong_len), None);
    }

    #[test]
    fn unknown_addresses_need_a_known_ufrag() {
        let mut demux = Demux::default();
        demux.add_ufrag("srv1".into(), 1);
        let a: SocketAddr = "127.0.0.1:4000".parse().unwrap();
        assert_eq!(demux.lookup(a, b"garbage"), None);
        assert_eq!(demux.lookup(a, &binding_request("nope:x")), None);
        assert_eq!(demux.lookup(a, &binding_request("srv1:x")), Some((1, true)));
        demux.add_addr(a, 1);
        assert_eq!(demux.lookup(a, b"anything"), Some((1, false)));
        demux.remove(1, Some("srv1"));
        assert_eq!(demux.lookup(a, b"anything"), None);
        assert_eq!(demux.len(), (0, 0));
    }

    #[test]
    fn a_peer_holds_a_bounded_number_of_addresses() {
        let mut demux = Demux::default();
        for port in 0..20u16 {
            demux.add_addr(SocketAddr::from(([127, 0, 0, 1], 5000 + port)), 9);
        }
        assert_eq!(demux.len().1, MAX_ADDRS_PER_PEER);
    }
}
