//! Join and admin tokens: JWTs signed with HS256 (a server secret) or EdDSA (an Ed25519 pair).
//!
//! A token binds a person (subject), a display name, a room, a role and grants, and is valid
//! between `nbf` and `exp`. Every way a token can be wrong has its own [`TokenError`] and stable
//! error code, so a client can tell "your link expired" from "this link is not ours".

use crate::ids;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};
use std::fmt;
use std::path::Path;
use std::time::Duration;
use tiaojie_config::{AuthConfig, TokenAlgorithm};
use tiaojie_domain::{Grant, PersonId, Role, RoomName};

/// Longest identity or display name a token may carry.
pub const MAX_NAME_LEN: usize = 128;

/// The claims of a tiaojie token.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    /// Issuer; must equal `auth.issuer`.
    pub iss: String,
    /// The person's identity, unique within a room.
    pub sub: PersonId,
    /// Name shown to others.
    pub name: String,
    /// The room this token admits to; `None` for admin tokens that are bound to no room.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub room: Option<RoomName>,
    /// The role held in that room.
    pub role: Role,
    /// What the bearer may do.
    pub grants: Vec<Grant>,
    /// Expiry, Unix seconds.
    pub exp: i64,
    /// Not valid before, Unix seconds.
    pub nbf: i64,
    /// Issued at, Unix seconds.
    pub iat: i64,
    /// Token id, for revocation.
    pub jti: String,
}

// Claims are never logged whole: a token id is enough to trace one.
impl fmt::Debug for Claims {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Claims")
            .field("sub", &self.sub)
            .field("room", &self.room)
            .field("role", &self.role)
            .field("jti", &self.jti)
            .finish_non_exhaustive()
    }
}

impl Claims {
    /// Whether the token carries a grant.
    pub fn has(&self, grant: Grant) -> bool {
        self.grants.contains(&grant)
    }
}

/// Why a token was refused. Each variant has a stable [`TokenError::code`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    /// Not a JWT, or its claims are missing or mistyped.
    #[error("the token is malformed")]
    Malformed,
    /// `alg: none`, or an algorithm this server does not use.
    #[error("the token's algorithm is not accepted")]
    Algorithm,
    /// The signature does not verify: forged or signed by someone else.
    #[error("the token's signature is invalid")]
    BadSignature,
    /// Past `exp`.
    #[error("the token has expired")]
    Expired,
    /// Before `nbf`.
    #[error("the token is not valid yet")]
    NotYetValid,
    /// Issued by another issuer.
    #[error("the token was issued by someone else")]
    WrongIssuer,
    /// Valid, but for another room.
    #[error("the token is for another room")]
    WrongRoom,
    /// Revoked (its holder was removed).
    #[error("the token has been revoked")]
    Revoked,
}

impl TokenError {
    /// The stable error code clients see.
    pub fn code(&self) -> &'static str {
        match self {
            TokenError::Malformed => "token_malformed",
            TokenError::Algorithm => "token_algorithm",
            TokenError::BadSignature => "token_bad_signature",
            TokenError::Expired => "token_expired",
            TokenError::NotYetValid => "token_not_yet_valid",
            TokenError::WrongIssuer => "token_wrong_issuer",
            TokenError::WrongRoom => "token_wrong_room",
            TokenError::Revoked => "token_revoked",
        }
    }
}

/// Why keys could not be set up or a token not issued.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// A key or secret file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// What the OS said.
        source: std::io::Error,
    },
    /// A key file holds no usable key.
    #[error("{path}: not a usable Ed25519 PEM key ({message})")]
    BadKey {
        /// The file.
        path: String,
        /// What was wrong.
        message: String,
    },
    /// This server has only a public key.
    #[error("this server has no private key (auth.ed25519_private_key) and cannot issue tokens")]
    CannotIssue,
    /// The request for a token breaks a rule.
    #[error("{0}")]
    Invalid(String),
    /// Signing failed.
    #[error("signing failed: {0}")]
    Signing(String),
}

/// What a new token should say.
#[derive(Debug, Clone)]
pub struct TokenRequest {
    /// The person's identity.
    pub identity: PersonId,
    /// Name shown to others; the identity if empty.
    pub name: String,
    /// The room, or `None` for a room-less admin token.
    pub room: Option<RoomName>,
    /// The role.
    pub role: Role,
    /// Grants; the role's defaults if `None`.
    pub grants: Option<Vec<Grant>>,
    /// Lifetime; `auth.default_ttl` if `None`.
    pub ttl: Option<Duration>,
    /// Not valid before this many seconds from now (0: at once).
    pub not_before_secs: i64,
}

/// Signs and verifies tokens with the configured keys.
pub struct TokenKeys {
    algorithm: Algorithm,
    encoding: Option<EncodingKey>,
    decoding: DecodingKey,
    validation: Validation,
    issuer: String,
    default_ttl: Duration,
    max_ttl: Duration,
}

/// Name of the generated HS256 secret inside the data directory.
pub const SECRET_FILE: &str = "jwt-secret";

impl TokenKeys {
    /// Loads keys as configured; for HS256 without a configured secret, reads or creates
    /// `<data_dir>/jwt-secret` (mode 0600).
    pub fn from_config(auth: &AuthConfig, data_dir: &Path) -> Result<TokenKeys, KeyError> {
        let (algorithm, encoding, decoding) = match auth.algorithm {
            TokenAlgorithm::HS256 => {
                let secret = if auth.secret.is_empty() {
                    load_or_create_secret(&data_dir.join(SECRET_FILE))?
                } else {
                    auth.secret.clone().into_bytes()
                };
                (
                    Algorithm::HS256,
                    Some(EncodingKey::from_secret(&secret)),
                    DecodingKey::from_secret(&secret),
                )
            }
            TokenAlgorithm::EdDSA => {
                let public = read_key(&auth.ed25519_public_key)?;
                let decoding = DecodingKey::from_ed_pem(&public).map_err(|e| KeyError::BadKey {
                    path: auth.ed25519_public_key.display().to_string(),
                    message: e.to_string(),
                })?;
                let encoding = if auth.ed25519_private_key.as_os_str().is_empty() {
                    None
                } else {
                    let private = read_key(&auth.ed25519_private_key)?;
                    Some(
                        EncodingKey::from_ed_pem(&private).map_err(|e| KeyError::BadKey {
                            path: auth.ed25519_private_key.display().to_string(),
                            message: e.to_string(),
                        })?,
                    )
                };
                (Algorithm::EdDSA, encoding, decoding)
            }
        };
        let mut validation = Validation::new(algorithm);
        validation.leeway = auth.leeway.as_secs();
        validation.validate_nbf = true;
        validation.set_issuer(&[&auth.issuer]);
        validation.set_required_spec_claims(&["exp", "nbf", "iss", "sub"]);
        Ok(TokenKeys {
            algorithm,
            encoding,
            decoding,
            validation,
            issuer: auth.issuer.clone(),
            default_ttl: auth.default_ttl,
            max_ttl: auth.max_ttl,
        })
    }

    /// Issues a token; returns it with its claims.
    pub fn issue(&self, request: &TokenRequest) -> Result<(String, Claims), KeyError> {
        let encoding = self.encoding.as_ref().ok_or(KeyError::CannotIssue)?;
        check_name("identity", request.identity.as_str())?;
        let name = if request.name.is_empty() {
            request.identity.to_string()
        } else {
            request.name.clone()
        };
        check_name("name", &name)?;
        if let Some(room) = &request.room {
            room.check().map_err(KeyError::Invalid)?;
        } else if !matches!(request.role, Role::Admin | Role::Mediator) {
            // A room-less mediator token is a staff token: it opens and runs the mediator's
            // own cases through the API and joins no room.
            return Err(KeyError::Invalid(
                "only admin and mediator (staff) tokens may omit the room".into(),
            ));
        }
        let ttl = request.ttl.unwrap_or(self.default_ttl);
        if ttl.is_zero() || ttl > self.max_ttl {
            return Err(KeyError::Invalid(format!(
                "ttl must be between 1s and auth.max_ttl ({})",
                tiaojie_config::duration::format(&self.max_ttl)
            )));
        }
        let mut grants = request
            .grants
            .clone()
            .unwrap_or_else(|| tiaojie_domain::permission::default_grants(request.role));
        grants.sort();
        grants.dedup();
        let now = now_secs();
        let nbf = now + request.not_before_secs.max(0);
        let claims = Claims {
            iss: self.issuer.clone(),
            sub: request.identity.clone(),
            name,
            room: request.room.clone(),
            role: request.role,
            grants,
            exp: nbf + ttl.as_secs() as i64,
            nbf,
            iat: now,
            jti: ids::random_id(),
        };
        let token = jsonwebtoken::encode(&Header::new(self.algorithm), &claims, encoding)
            .map_err(|e| KeyError::Signing(e.to_string()))?;
        Ok((token, claims))
    }

    /// Whether a token that expires at `exp` (seconds) is still good at `now` (seconds),
    /// allowing the configured clock skew — the same test [`TokenKeys::verify`] applies. A
    /// `resume` is held to it: a session in progress may finish on an expired link, but no new
    /// join and no resume after `exp` + leeway (docs/protocol.md).
    pub fn still_valid(&self, exp: i64, now: i64) -> bool {
        now <= exp.saturating_add(self.validation.leeway as i64)
    }

    /// Verifies signature, algorithm, issuer and validity period. Room binding and revocation
    /// are the caller's checks (they need the request and the database).
    pub fn verify(&self, token: &str) -> Result<Claims, TokenError> {
        // Look at the header ourselves first: `alg: none` (or any other algorithm) is refused
        // by name, before any parser could be talked into treating it as valid.
        let header_b64 = token.split('.').next().ok_or(TokenError::Malformed)?;
        let header_json = URL_SAFE_NO_PAD
            .decode(header_b64)
            .map_err(|_| TokenError::Malformed)?;
        let header: serde_json::Value =
            serde_json::from_slice(&header_json).map_err(|_| TokenError::Malformed)?;
        let alg = header
            .get("alg")
            .and_then(|a| a.as_str())
            .ok_or(TokenError::Malformed)?;
        let expected = match self.algorithm {
            Algorithm::EdDSA => "EdDSA",
            _ => "HS256",
        };
        if alg != expected {
            return Err(TokenError::Algorithm);
        }
        let data = jsonwebtoken::decode::<Claims>(token, &self.decoding, &self.validation)
            .map_err(|e| match e.kind() {
                ErrorKind::InvalidSignature => TokenError::BadSignature,
                ErrorKind::ExpiredSignature => TokenError::Expired,
                ErrorKind::ImmatureSignature => TokenError::NotYetValid,
                ErrorKind::InvalidIssuer => TokenError::WrongIssuer,
                ErrorKind::InvalidAlgorithm
                | ErrorKind::InvalidAlgorithmName
                | ErrorKind::UnsupportedAlgorithm => TokenError::Algorithm,
                _ => TokenError::Malformed,
            })?;
        let claims = data.claims;
        if check_name("identity", claims.sub.as_str()).is_err()
            || check_name("name", &claims.name).is_err()
        {
            return Err(TokenError::Malformed);
        }
        Ok(claims)
    }
}

fn check_name(what: &str, value: &str) -> Result<(), KeyError> {
    if value.trim().is_empty()
        || value.chars().count() > MAX_NAME_LEN
        || value.chars().any(char::is_control)
    {
        return Err(KeyError::Invalid(format!(
            "{what} must be 1 to {MAX_NAME_LEN} printable characters"
        )));
    }
    Ok(())
}

/// Unix seconds now.
pub fn now_secs() -> i64 {
    tiaojie_domain::clock::now_millis() / 1000
}

fn read_key(path: &Path) -> Result<Vec<u8>, KeyError> {
    std::fs::read(path).map_err(|source| KeyError::Io {
        path: path.display().to_string(),
        source,
    })
}

fn load_or_create_secret(path: &Path) -> Result<Vec<u8>, KeyError> {
    let io = |source| KeyError::Io {
        path: path.display().to_string(),
        source,
    };
    match std::fs::read_to_string(path) {
        Ok(text) if text.trim().len() >= 32 => return Ok(text.trim().as_bytes().to_vec()),
        Ok(_) => {
            return Err(KeyError::BadKey {
                path: path.display().to_string(),
                message: "secret shorter than 32 bytes".into(),
            });
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(io(e)),
    }
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(io)?;
    }
    let secret = ids::random_token(48);
    write_private_file(path, secret.as_bytes()).map_err(io)?;
    Ok(secret.into_bytes())
}

/// Writes a file only its owner can read (mode 0600 on Unix), failing if it exists.
pub fn write_private_file(path: &Path, contents: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options.open(path)?;
    file.write_all(contents)?;
    file.sync_all()
}

/// Generates an Ed25519 key pair as (PKCS#8 private PEM, SPKI public PEM).
pub fn generate_ed25519_pem() -> Result<(String, String), KeyError> {
    use aws_lc_rs::signature::{Ed25519KeyPair, KeyPair};
    let rng = aws_lc_rs::rand::SystemRandom::new();
    let pkcs8 =
        Ed25519KeyPair::generate_pkcs8(&rng).map_err(|e| KeyError::Signing(e.to_string()))?;
    let pair =
        Ed25519KeyPair::from_pkcs8(pkcs8.as_ref()).map_err(|e| KeyError::Signing(e.to_string()))?;
    // SubjectPublicKeyInfo for Ed25519 (RFC 8410): a fixed 12-byte prefix, then the raw key.
    let mut spki = vec![
        0x30, 0x2a, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x03, 0x21, 0x00,
    ];
    spki.extend_from_slice(pair.public_key().as_ref());
    Ok((pem("PRIVATE KEY", pkcs8.as_ref()), pem("PUBLIC KEY", &spki)))
}

fn pem(label: &str, der: &[u8]) -> String {
    let b64 = base64::engine::general_purpose::STANDARD.encode(der);
    let mut out = format!("-----BEGIN {label}-----\n");
    for chunk in b64.as_bytes().chunks(64) {
        out.push_str(&String::from_utf8_lossy(chunk));
        out.push('\n');
    }
    out.push_str(&format!("-----END {label}-----\n"));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hs_keys(secret: &str) -> TokenKeys {
        let auth = AuthConfig {
            secret: secret.into(),
            ..Default::default()
        };
        TokenKeys::from_config(&auth, Path::new("/nonexistent")).expect("keys")
    }

    fn request(room: &str) -> TokenRequest {
        TokenRequest {
            identity: "alice".into(),
            name: "张三".into(),
            room: Some(room.into()),
            role: Role::Party,
            grants: None,
            ttl: None,
            not_before_secs: 0,
        }
    }

    const SECRET: &str = "0123456789abcdef0123456789abcdef";

    #[test]
    fn issued_tokens_verify_with_role_defaults() {
        let keys = hs_keys(SECRET);
        let (token, claims) = keys.issue(&request("r1")).expect("issue");
        let back = keys.verify(&token).expect("verify");
        assert_eq!(back, claims);
        assert_eq!(back.grants, vec![Grant::Publish, Grant::Subscribe]);
        assert_eq!(back.name, "张三");
        assert!(back.exp - back.iat == 7200);
    }

    #[test]
    fn forged_none_expired_and_early_tokens_get_distinct_errors() {
        let keys = hs_keys(SECRET);
        let other = hs_keys("another-secret-another-secret-another");
        let (forged, _) = other.issue(&request("r1")).expect("issue");
        assert_eq!(keys.verify(&forged), Err(TokenError::BadSignature));

        let (good, _) = keys.issue(&request("r1")).expect("issue");
        let parts: Vec<&str> = good.split('.').collect();
        let none_header = URL_SAFE_NO_PAD.encode(br#"{"alg":"none","typ":"JWT"}"#);
        assert_eq!(
            keys.verify(&format!("{none_header}.{}.", parts[1])),
            Err(TokenError::Algorithm)
        );
        let hs512 = URL_SAFE_NO_PAD.encode(br#"{"alg":"HS512","typ":"JWT"}"#);
        assert_eq!(
            keys.verify(&format!("{hs512}.{}.{}", parts[1], parts[2])),
            Err(TokenError::Algorithm)
        );

        // Tamper with the payload: the signature no longer matches.
        let mut claims: serde_json::Value =
            serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[1]).expect("b64")).expect("json");
        claims["role"] = "mediator".into();
        let payload = URL_SAFE_NO_PAD.encode(claims.to_string());
        assert_eq!(
            keys.verify(&format!("{}.{payload}.{}", parts[0], parts[2])),
            Err(TokenError::BadSignature)
        );

        let mut early = request("r1");
        early.not_before_secs = 3600;
        let (token, _) = keys.issue(&early).expect("issue");
        assert_eq!(keys.verify(&token), Err(TokenError::NotYetValid));

        let expired = Claims {
            exp: now_secs() - 3600,
            nbf: now_secs() - 7200,
            iat: now_secs() - 7200,
            ..keys.verify(&good).expect("verify")
        };
        let token = jsonwebtoken::encode(
            &Header::new(Algorithm::HS256),
            &expired,
            &EncodingKey::from_secret(SECRET.as_bytes()),
        )
        .expect("encode");
        assert_eq!(keys.verify(&token), Err(TokenError::Expired));

        assert_eq!(keys.verify("not a token"), Err(TokenError::Malformed));
        assert_eq!(keys.verify(""), Err(TokenError::Malformed));
    }

    #[test]
    fn issuing_checks_its_input() {
        let keys = hs_keys(SECRET);
        let mut r = request("r1");
        r.ttl = Some(Duration::from_secs(365 * 86400));
        assert!(matches!(keys.issue(&r), Err(KeyError::Invalid(_))));
        let mut r = request("bad room");
        r.ttl = None;
        assert!(matches!(keys.issue(&r), Err(KeyError::Invalid(_))));
        let mut r = request("r1");
        r.room = None;
        assert!(matches!(keys.issue(&r), Err(KeyError::Invalid(_))));
        r.role = Role::Admin;
        assert!(keys.issue(&r).is_ok());
        let mut r = request("r1");
        r.identity = "a\nb".into();
        assert!(matches!(keys.issue(&r), Err(KeyError::Invalid(_))));
    }

    #[test]
    fn eddsa_keys_sign_and_a_public_key_only_verifies() {
        let dir = std::env::temp_dir().join(format!("tiaojie-ed-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let (private, public) = generate_ed25519_pem().expect("generate");
        std::fs::write(dir.join("k.pem"), private).expect("write");
        std::fs::write(dir.join("k.pub.pem"), public).expect("write");
        let auth = AuthConfig {
            algorithm: TokenAlgorithm::EdDSA,
            ed25519_private_key: dir.join("k.pem"),
            ed25519_public_key: dir.join("k.pub.pem"),
            ..Default::default()
        };
        let keys = TokenKeys::from_config(&auth, &dir).expect("keys");
        let (token, _) = keys.issue(&request("r1")).expect("issue");
        assert!(keys.verify(&token).is_ok());

        let verify_only = TokenKeys::from_config(
            &AuthConfig {
                ed25519_private_key: Default::default(),
                ..auth
            },
            &dir,
        )
        .expect("keys");
        assert!(verify_only.verify(&token).is_ok());
        assert!(matches!(
            verify_only.issue(&request("r1")),
            Err(KeyError::CannotIssue)
        ));
        // An HS256 token is refused by an EdDSA server by algorithm, not by signature.
        let (hs, _) = hs_keys(SECRET).issue(&request("r1")).expect("issue");
        assert_eq!(keys.verify(&hs), Err(TokenError::Algorithm));
        std::fs::remove_dir_all(dir).ok();
    }

    #[test]
    fn generated_secret_is_private_and_stable() {
        let dir = std::env::temp_dir().join(format!("tiaojie-secret-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let auth = AuthConfig::default();
        let a = TokenKeys::from_config(&auth, &dir).expect("keys");
        let (token, _) = a.issue(&request("r1")).expect("issue");
        let b = TokenKeys::from_config(&auth, &dir).expect("keys again");
        assert!(b.verify(&token).is_ok(), "the secret survives a restart");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(dir.join(SECRET_FILE))
                .expect("meta")
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        std::fs::remove_dir_all(dir).ok();
    }
}
