//! The signatures of JSON Web Tokens: the keys the hub verifies with, and
//! minting a token for testing. Everything here goes through the
//! `jsonwebtoken` crate, which is the cargo feature `jwt` (on by default,
//! and always in the binary). Without it, a configuration that names a JWT
//! key is refused at start, and the rest of the access rules (`access.rs`)
//! are unchanged.
//!
//! `jsonwebtoken` checks signatures through its process-wide crypto
//! provider. A hub with a JWT key configured, and [`mint_hs256`], install
//! its pure-Rust provider unless the program installed one first: a program
//! that also uses `jsonwebtoken` with its `aws_lc_rs` backend has both
//! backends compiled in, and then no provider at all until one is
//! installed. To use aws-lc there, install it before starting the server.

use crate::error::Error;

/// The shortest `--jwt-secret`: RFC 7518 (3.2) asks for a key at least as
/// long as the hash, 256 bits for HS256, and a shorter one can be guessed
/// offline from any token signed with it.
pub const MIN_SECRET_LEN: usize = 32;

/// Checks a secret for HS256.
pub(crate) fn check_secret(secret: &[u8]) -> Result<(), Error> {
    if secret.len() < MIN_SECRET_LEN {
        return Err(Error::InvalidConfig {
            field: "jwt_secret",
            why: format!(
                "must be at least {MIN_SECRET_LEN} bytes (RFC 7518); make one with `openssl rand -hex 32`"
            ),
        });
    }
    Ok(())
}

#[cfg(feature = "jwt")]
pub(crate) use with_jwt::Keys;
#[cfg(feature = "jwt")]
pub use with_jwt::mint_hs256;
#[cfg(not(feature = "jwt"))]
pub(crate) use without_jwt::Keys;

#[cfg(feature = "jwt")]
mod with_jwt {
    use std::borrow::Cow;
    use std::fs::File;
    use std::io::Read;
    use std::path::Path;
    use std::sync::Once;
    use std::time::{Duration, SystemTime, UNIX_EPOCH};

    use jsonwebtoken::errors::ErrorKind;
    use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
    use serde::{Deserialize, Serialize};

    use crate::error::Error;
    use crate::server::access::{CLOCK_SKEW, Grants};
    use crate::server::config::Config;
    use crate::server::jwt::check_secret;

    /// The keys the hub verifies tokens with.
    pub(crate) struct Keys {
        secret: Option<Verifier>,
        public_key: Option<Verifier>,
    }

    impl Keys {
        /// The keys a configuration that passed [`Config::validate`] names,
        /// or `None` if it names none.
        ///
        /// # Errors
        ///
        /// [`Error::InvalidConfig`] naming `jwt_public_key`: a key file
        /// that cannot be read or holds no public key the hub can use.
        pub(crate) fn new(config: &Config) -> Result<Option<Keys>, Error> {
            if config.jwt_secret.is_none() && config.jwt_public_key.is_none() {
                return Ok(None);
            }
            install_crypto_provider();
            let secret = config.jwt_secret.as_ref().map(|secret| {
                Verifier::new(
                    Algorithm::HS256,
                    DecodingKey::from_secret(secret.as_bytes()),
                )
            });
            let public_key = match &config.jwt_public_key {
                Some(path) => Some(read_public_key(path).map_err(|why| Error::InvalidConfig {
                    field: "jwt_public_key",
                    why: format!("{}: {why}", path.display()),
                })?),
                None => None,
            };
            Ok(Some(Keys { secret, public_key }))
        }

        /// What a token allows, if it verifies; else why not, in words that
        /// never quote it.
        /// The token's grants and its subject (`sub`), if it verifies.
        pub(crate) fn verify(
            &self,
            token: &str,
        ) -> Result<(Grants, Option<String>), Cow<'static, str>> {
            // A header that names an algorithm the library does not know,
            // such as `none`, fails here.
            let header = jsonwebtoken::decode_header(token).map_err(|_| {
                Cow::Owned(format!(
                    "it is not a JSON Web Token signed with {} \
                     (three base64url parts, header.payload.signature)",
                    self.accepted()
                ))
            })?;
            // The key is chosen by the header's algorithm, and each key
            // takes only its own: no token can make the hub check an HMAC
            // against the public key's bytes.
            let verifier = [&self.secret, &self.public_key]
                .into_iter()
                .flatten()
                .find(|v| v.algorithm == header.alg)
                .ok_or_else(|| {
                    Cow::Owned(format!(
                        "it is signed with {:?}, and the hub takes {}",
                        header.alg,
                        self.accepted()
                    ))
                })?;
            jsonwebtoken::decode::<Claims>(token, &verifier.key, &verifier.validation)
                .map(|data| (data.claims.grants, data.claims.sub))
                .map_err(|e| why_invalid(e.kind()))
        }

        /// The algorithms the hub takes, for an error message.
        fn accepted(&self) -> String {
            [&self.secret, &self.public_key]
                .into_iter()
                .flatten()
                .map(|v| format!("{:?}", v.algorithm))
                .collect::<Vec<_>>()
                .join(" or ")
        }
    }

    /// The claims the hub mints: its grants, when it was issued, and when it
    /// expires.
    #[derive(Serialize)]
    struct Minted<'a> {
        #[serde(rename = "sse-hub")]
        grants: &'a Grants,
        iat: u64,
        exp: u64,
    }

    /// The claims the hub reads; `exp` and `nbf` are checked by the library.
    #[derive(Deserialize)]
    struct Claims {
        #[serde(rename = "sse-hub", default)]
        grants: Grants,
        /// Who the holder is: the user presence shows.
        sub: Option<String>,
    }

    /// Mints a token signed with `secret` (HS256) that allows `grants` for
    /// `ttl` from now: what a hub started with `--jwt-secret` set to the same
    /// secret accepts. For tests, and for an application that hands its users
    /// tokens.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidConfig`] naming `jwt_secret` if the secret is shorter
    /// than [`MIN_SECRET_LEN`](crate::access::MIN_SECRET_LEN) bytes.
    ///
    /// # Example
    ///
    /// ```
    /// use std::time::Duration;
    /// use sse_hub::access::{Grants, mint_hs256};
    ///
    /// let grants = Grants { subscribe: vec!["user:42".parse()?], publish: vec![] };
    /// let token = mint_hs256(b"a secret of at least thirty-two bytes", &grants, Duration::from_secs(3600))?;
    /// assert_eq!(token.split('.').count(), 3);
    /// # Ok::<(), sse_hub::Error>(())
    /// ```
    pub fn mint_hs256(secret: &[u8], grants: &Grants, ttl: Duration) -> Result<String, Error> {
        check_secret(secret)?;
        install_crypto_provider();
        let now = unix_now();
        let claims = Minted {
            grants,
            iat: now,
            exp: now.saturating_add(ttl.as_secs()),
        };
        // HS256 with a byte-string key and claims of strings and numbers has
        // no way to fail; the error is mapped rather than unwrapped all the same.
        jsonwebtoken::encode(
            &Header::new(Algorithm::HS256),
            &claims,
            &EncodingKey::from_secret(secret),
        )
        .map_err(|e| Error::InvalidConfig {
            field: "jwt_secret",
            why: format!("cannot sign with it: {e}"),
        })
    }

    /// Makes sure `jsonwebtoken` has a crypto provider. It picks one from its
    /// features, and with both of its backends compiled in (another crate of
    /// the program asking for `aws_lc_rs` beside this crate's `rust_crypto`)
    /// it has none and panics on first use. A provider the program installed
    /// first is kept: either backend takes every algorithm the hub uses.
    fn install_crypto_provider() {
        static INSTALL: Once = Once::new();
        INSTALL.call_once(|| {
            let _ = jsonwebtoken::crypto::rust_crypto::DEFAULT_PROVIDER.install_default();
        });
    }

    fn unix_now() -> u64 {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs())
    }

    /// One key the hub verifies with, and the one algorithm it takes.
    struct Verifier {
        algorithm: Algorithm,
        key: DecodingKey,
        validation: Validation,
    }

    impl Verifier {
        fn new(algorithm: Algorithm, key: DecodingKey) -> Verifier {
            let mut validation = Validation::new(algorithm);
            validation.leeway = CLOCK_SKEW.as_secs();
            validation.validate_nbf = true;
            Verifier {
                algorithm,
                key,
                validation,
            }
        }
    }

    /// Words for why a token failed, for the 401's text.
    fn why_invalid(kind: &ErrorKind) -> Cow<'static, str> {
        match kind {
            ErrorKind::ExpiredSignature => "it has expired (exp)".into(),
            ErrorKind::ImmatureSignature => "it is not valid yet (nbf)".into(),
            ErrorKind::InvalidSignature => "its signature does not verify".into(),
            ErrorKind::InvalidAlgorithm => "its algorithm does not fit the hub's key".into(),
            ErrorKind::MissingRequiredClaim(claim) => format!("it has no {claim} claim").into(),
            ErrorKind::InvalidClaimFormat(claim) => {
                format!("its {claim} claim is malformed").into()
            }
            ErrorKind::InvalidAudience => {
                "it names an audience (aud), and this hub is none: leave aud out".into()
            }
            ErrorKind::Json(e) => format!("its claims are malformed: {e}").into(),
            _ => "it is not a well-formed JSON Web Token".into(),
        }
    }

    /// The largest key file read; an RSA key of 16,384 bits is under 3 KiB
    /// of PEM.
    const MAX_KEY_FILE: u64 = 64 * 1024;

    /// Reads a PEM public key and picks the algorithm that goes with it.
    fn read_public_key(path: &Path) -> Result<Verifier, String> {
        let mut pem = Vec::new();
        File::open(path)
            .and_then(|file| file.take(MAX_KEY_FILE + 1).read_to_end(&mut pem))
            .map_err(|e| format!("cannot read it: {e}"))?;
        if pem.len() as u64 > MAX_KEY_FILE {
            return Err(format!(
                "is larger than {} KiB, too large for a PEM public key",
                MAX_KEY_FILE / 1024
            ));
        }
        let text = String::from_utf8_lossy(&pem);
        if text.contains("PRIVATE KEY-----") {
            // A private key on the hub is a secret where it need not be.
            return Err(
                "holds a private key; give the public key (`openssl pkey -in KEY -pubout`)".into(),
            );
        }
        if let Ok(key) = DecodingKey::from_ec_pem(&pem) {
            // The key is the curve point; only P-256's uncompressed point
            // (0x04, then two 32-byte coordinates) goes with ES256.
            if key.as_bytes().len() != 65 {
                return Err("holds an EC key that is not on P-256, the curve of ES256".into());
            }
            return Ok(Verifier::new(Algorithm::ES256, key));
        }
        if let Ok(key) = DecodingKey::from_ed_pem(&pem) {
            return Ok(Verifier::new(Algorithm::EdDSA, key));
        }
        if let Ok(key) = DecodingKey::from_rsa_pem(&pem) {
            return Ok(Verifier::new(Algorithm::RS256, key));
        }
        Err("holds no PEM public key for RS256 (RSA), ES256 (P-256) or EdDSA (Ed25519)".into())
    }
}

#[cfg(not(feature = "jwt"))]
mod without_jwt {
    use std::borrow::Cow;

    use crate::error::Error;
    use crate::server::access::Grants;
    use crate::server::config::Config;

    /// No keys: this build verifies no tokens.
    pub(crate) enum Keys {}

    impl Keys {
        /// `None`, or an error if the configuration names a key.
        ///
        /// # Errors
        ///
        /// [`Error::InvalidConfig`] naming the key's setting.
        pub(crate) fn new(config: &Config) -> Result<Option<Keys>, Error> {
            let field = if config.jwt_secret.is_some() {
                "jwt_secret"
            } else if config.jwt_public_key.is_some() {
                "jwt_public_key"
            } else {
                return Ok(None);
            };
            Err(Error::InvalidConfig {
                field,
                why: "this build of sse-hub verifies no JSON Web Tokens: \
                      build it with its cargo feature `jwt`"
                    .to_owned(),
            })
        }

        pub(crate) fn verify(
            &self,
            _token: &str,
        ) -> Result<(Grants, Option<String>), Cow<'static, str>> {
            match *self {}
        }
    }
}
