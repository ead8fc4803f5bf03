//! Signed envelopes: what crosses the network boundary in either direction.
//!
//! The signer serialises the message once and signs those exact bytes; the receiver checks the
//! signature over the bytes it received and only then parses them. Nothing is re-serialised
//! before checking, so no canonical-JSON rules have to agree on both sides.

use aws_lc_rs::rand::{SecureRandom, SystemRandom};
use aws_lc_rs::signature::{ED25519, Ed25519KeyPair, KeyPair as _, UnparsedPublicKey};
use base64::Engine as _;
use serde::{Deserialize, Serialize};

const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;

/// Why an envelope or a key was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum EnvelopeError {
    /// The signature does not match the payload and the expected key.
    #[error("the signature does not verify with the expected key: altered or forged")]
    BadSignature,
    /// Signed correctly but not a message of this protocol.
    #[error("the payload is not a valid message: {0}")]
    Malformed(String),
    /// A key that is not an Ed25519 key.
    #[error("not an Ed25519 key: {0}")]
    Key(String),
}

/// An Ed25519 private key (PKCS#8 DER), the server's or a court bridge's.
pub struct Signer(Ed25519KeyPair);

impl std::fmt::Debug for Signer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Signer({})", self.public_b64())
    }
}

impl Signer {
    /// A key from its PKCS#8 DER encoding.
    pub fn from_pkcs8(der: &[u8]) -> Result<Signer, EnvelopeError> {
        Ed25519KeyPair::from_pkcs8_maybe_unchecked(der)
            .map(Signer)
            .map_err(|e| EnvelopeError::Key(e.to_string()))
    }

    /// A fresh key and its PKCS#8 DER encoding (first start, tests).
    pub fn generate() -> Result<(Signer, Vec<u8>), EnvelopeError> {
        let der = Ed25519KeyPair::generate_pkcs8(&SystemRandom::new())
            .map_err(|e| EnvelopeError::Key(e.to_string()))?;
        let signer = Signer::from_pkcs8(der.as_ref())?;
        Ok((signer, der.as_ref().to_vec()))
    }

    /// The public key, base64: what the other side puts in its configuration.
    pub fn public_b64(&self) -> String {
        B64.encode(self.0.public_key().as_ref())
    }

    /// The public key as a [`PublicKey`].
    pub fn public(&self) -> PublicKey {
        PublicKey(self.0.public_key().as_ref().to_vec())
    }

    /// Signs `bytes`; base64.
    pub fn sign_b64(&self, bytes: &[u8]) -> String {
        B64.encode(self.0.sign(bytes).as_ref())
    }

    /// Seals a message: serialises it once and signs those bytes.
    pub fn seal(&self, message: &Message) -> Envelope {
        let payload = serde_json::to_string(message).unwrap_or_default();
        let signature = self.sign_b64(payload.as_bytes());
        Envelope { payload, signature }
    }
}

/// An Ed25519 public key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublicKey(Vec<u8>);

impl PublicKey {
    /// From base64 (as printed by `public_b64`).
    pub fn from_b64(b64: &str) -> Result<PublicKey, EnvelopeError> {
        let bytes = B64
            .decode(b64.trim())
            .map_err(|e| EnvelopeError::Key(e.to_string()))?;
        if bytes.len() != 32 {
            return Err(EnvelopeError::Key(format!(
                "{} bytes, an Ed25519 public key has 32",
                bytes.len()
            )));
        }
        Ok(PublicKey(bytes))
    }

    /// Base64.
    pub fn to_b64(&self) -> String {
        B64.encode(&self.0)
    }

    /// Whether `signature_b64` is this key's signature of `bytes`.
    pub fn verifies(&self, bytes: &[u8], signature_b64: &str) -> bool {
        let Ok(signature) = B64.decode(signature_b64) else {
            return false;
        };
        UnparsedPublicKey::new(&ED25519, &self.0)
            .verify(bytes, &signature)
            .is_ok()
    }
}

/// What the two sides send each other, as signed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Message {
    /// Unique per message; the receiver's inbox is keyed by it, so a redelivery is a no-op.
    pub message_id: String,
    /// The case the message is about.
    pub case_id: String,
    /// Position among this sender's messages about this case, from 1: the receiver applies a
    /// case's messages in this order.
    pub seq: i64,
    /// Written, Unix ms.
    pub created_at: i64,
    /// The content.
    pub body: Body,
}

/// The content of a message.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum Body {
    /// Internet side → court: the parties' joint application.
    Application(Box<crate::application::Application>),
    /// Internet side → court: the applicants withdraw before the ruling.
    Withdrawal {
        /// The application's message id.
        application: String,
        /// Who withdrew.
        by: String,
    },
    /// Court → internet side: the application's court-side state changed.
    CourtUpdate(crate::court::CourtUpdate),
}

/// A message and its signature, as sent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Envelope {
    /// The message's JSON, exactly as signed.
    pub payload: String,
    /// Ed25519 signature of `payload`'s bytes, base64.
    pub signature: String,
}

impl Envelope {
    /// What the payload says `field` is, unverified: to name a message in a refusal or to
    /// group messages before each is opened.
    pub fn claimed(&self, field: &str) -> String {
        serde_json::from_str::<serde_json::Value>(&self.payload)
            .ok()
            .and_then(|v| v.get(field)?.as_str().map(str::to_string))
            .unwrap_or_default()
    }

    /// Checks the signature with `key`, then parses the payload.
    pub fn open(&self, key: &PublicKey) -> Result<Message, EnvelopeError> {
        if !key.verifies(self.payload.as_bytes(), &self.signature) {
            return Err(EnvelopeError::BadSignature);
        }
        serde_json::from_str(&self.payload).map_err(|e| EnvelopeError::Malformed(e.to_string()))
    }
}

/// A random id: 128 bits, URL-safe base64.
pub fn random_id() -> String {
    let mut bytes = [0u8; 16];
    // The system generator failing leaves zeros; ids then collide and the inbox refuses the
    // duplicate rather than anything being lost.
    let _ = SystemRandom::new().fill(&mut bytes);
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message() -> Message {
        Message {
            message_id: "m1".into(),
            case_id: "c1".into(),
            seq: 1,
            created_at: 1,
            body: Body::Withdrawal {
                application: "a1".into(),
                by: "p-zhang".into(),
            },
        }
    }

    #[test]
    fn a_sealed_message_opens_with_the_signers_key_only() {
        let (server, _) = Signer::generate().expect("key");
        let (other, _) = Signer::generate().expect("key");
        let envelope = server.seal(&message());
        assert_eq!(envelope.open(&server.public()), Ok(message()));
        assert_eq!(
            envelope.open(&other.public()),
            Err(EnvelopeError::BadSignature)
        );
    }

    #[test]
    fn any_altered_byte_is_refused() {
        let (server, _) = Signer::generate().expect("key");
        let envelope = server.seal(&message());
        let altered = Envelope {
            payload: envelope.payload.replace("p-zhang", "p-zhanG"),
            ..envelope.clone()
        };
        assert_eq!(
            altered.open(&server.public()),
            Err(EnvelopeError::BadSignature)
        );
        let mut signature = envelope.signature.clone().into_bytes();
        signature[3] = if signature[3] == b'A' { b'B' } else { b'A' };
        let resigned = Envelope {
            signature: String::from_utf8(signature).expect("ascii"),
            ..envelope
        };
        assert_eq!(
            resigned.open(&server.public()),
            Err(EnvelopeError::BadSignature)
        );
    }

    #[test]
    fn public_keys_round_trip_and_bad_ones_are_refused() {
        let (server, der) = Signer::generate().expect("key");
        let again = Signer::from_pkcs8(&der).expect("reload");
        assert_eq!(again.public_b64(), server.public_b64());
        assert_eq!(
            PublicKey::from_b64(&server.public_b64()).expect("b64"),
            server.public()
        );
        assert!(PublicKey::from_b64("AAAA").is_err());
        assert!(PublicKey::from_b64("not base64!").is_err());
        assert!(Signer::from_pkcs8(b"garbage").is_err());
    }
}
