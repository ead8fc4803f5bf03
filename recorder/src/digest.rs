//! SHA-256, hex, and the Ed25519 key the recorder signs with (aws-lc-rs, already the server's
//! crypto).

use aws_lc_rs::digest::{SHA256, digest};
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{ED25519, Ed25519KeyPair, KeyPair, UnparsedPublicKey};

/// Lowercase hex of SHA-256 of `data`.
pub(crate) fn sha256_hex(data: &[u8]) -> String {
    hex(digest(&SHA256, data).as_ref())
}

pub(crate) fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    bytes
        .iter()
        .fold(String::with_capacity(bytes.len() * 2), |mut s, b| {
            let _ = write!(s, "{b:02x}");
            s
        })
}

/// The server's Ed25519 signing key.
pub struct SigningKey(Ed25519KeyPair);

impl SigningKey {
    /// A key from its PKCS#8 (v1 or v2) DER encoding.
    pub fn from_pkcs8(der: &[u8]) -> Result<SigningKey, String> {
        Ed25519KeyPair::from_pkcs8_maybe_unchecked(der)
            .map(SigningKey)
            .map_err(|e| format!("not an Ed25519 PKCS#8 key: {e}"))
    }

    /// A fresh key (tests, first start).
    pub fn generate() -> Result<(SigningKey, Vec<u8>), String> {
        let der = Ed25519KeyPair::generate_pkcs8(&SystemRandom::new())
            .map_err(|e| format!("cannot generate a key: {e}"))?;
        let key = SigningKey::from_pkcs8(der.as_ref())?;
        Ok((key, der.as_ref().to_vec()))
    }

    /// The public key, base64 (standard alphabet).
    pub fn public_b64(&self) -> String {
        b64(self.0.public_key().as_ref())
    }

    pub(crate) fn sign_b64(&self, message: &[u8]) -> String {
        b64(self.0.sign(message).as_ref())
    }
}

/// Whether `signature_b64` is `public_b64`'s Ed25519 signature of `message`.
pub(crate) fn signature_valid(public_b64: &str, message: &[u8], signature_b64: &str) -> bool {
    use base64::Engine as _;
    let engine = base64::engine::general_purpose::STANDARD;
    match (engine.decode(public_b64), engine.decode(signature_b64)) {
        (Ok(public), Ok(signature)) => UnparsedPublicKey::new(&ED25519, public)
            .verify(message, &signature)
            .is_ok(),
        _ => false,
    }
}

fn b64(bytes: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sha256_and_signatures() {
        assert_eq!(
            sha256_hex(b"abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        let (key, der) = SigningKey::generate().expect("key");
        let again = SigningKey::from_pkcs8(&der).expect("reload");
        assert_eq!(key.public_b64(), again.public_b64());
        let sig = key.sign_b64(b"head");
        assert!(signature_valid(&key.public_b64(), b"head", &sig));
        assert!(!signature_valid(&key.public_b64(), b"head2", &sig));
        assert!(!signature_valid("not base64!", b"head", &sig));
        assert!(SigningKey::from_pkcs8(b"junk").is_err());
    }
}
