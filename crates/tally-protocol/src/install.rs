//! The secret each install keeps, and the install id made of it.
//!
//! An install id is the SHA-256 of a secret only that install knows (cut
//! to a version 8 UUID), so the server can check that whoever asks to
//! erase an install is that install without keeping anything of its own:
//! it hashes the secret it is given and compares. The id travels with
//! every event; the secret only with an erasure. A wrong secret is
//! refused before anything is looked up, so a refusal says nothing about
//! whether the install exists.

use sha2::{Digest, Sha256};
use uuid::Uuid;

/// What the hash of a secret starts with, so no other use of SHA-256 on
/// the same bytes makes the same id.
const DOMAIN: &[u8] = b"tally install id v1\0";

/// The hex digits of a secret.
const SECRET_LEN: usize = 64;

/// A secret that makes an install id: 64 lowercase hex digits.
///
/// ```
/// use tally_protocol::InstallSecret;
/// let secret = InstallSecret::new();
/// let again = InstallSecret::parse(secret.as_str()).expect("a secret it made");
/// assert_eq!(again.install_id(), secret.install_id());
/// assert!(tally_protocol::owns(secret.install_id(), secret.as_str()));
/// assert!(!tally_protocol::owns(secret.install_id(), InstallSecret::new().as_str()));
/// ```
#[derive(Clone, PartialEq, Eq)]
pub struct InstallSecret(String);

impl InstallSecret {
    /// A new secret: 244 random bits (two version 4 UUIDs' worth).
    #[allow(clippy::new_without_default)]
    pub fn new() -> Self {
        Self(format!(
            "{}{}",
            Uuid::new_v4().simple(),
            Uuid::new_v4().simple()
        ))
    }

    /// Reads a secret; `None` unless it is 64 lowercase hex digits.
    pub fn parse(text: &str) -> Option<Self> {
        (text.len() == SECRET_LEN && text.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')))
            .then(|| Self(text.to_owned()))
    }

    /// The secret as text, for the config file and the erasure header.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The install id this secret makes.
    pub fn install_id(&self) -> Uuid {
        let digest = Sha256::new()
            .chain_update(DOMAIN)
            .chain_update(self.0.as_bytes())
            .finalize();
        let mut bytes = [0u8; 16];
        bytes.copy_from_slice(&digest[..16]);
        uuid::Builder::from_custom_bytes(bytes).into_uuid()
    }
}

impl std::fmt::Debug for InstallSecret {
    /// Never the secret itself: it could end in a log.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("InstallSecret(..)")
    }
}

/// Whether `secret` is the one `install_id` was made of. Takes the same
/// time for any secret of the right form, whatever the id.
///
/// ```
/// let id: uuid::Uuid = "6f9619ff-8b86-4d01-b42d-00cf4fc964ff".parse().unwrap();
/// assert!(!tally_protocol::owns(id, "not a secret"));
/// ```
pub fn owns(install_id: Uuid, secret: &str) -> bool {
    let Some(secret) = InstallSecret::parse(secret) else {
        return false;
    };
    let (made, given) = (secret.install_id(), install_id);
    made.as_bytes()
        .iter()
        .zip(given.as_bytes())
        .fold(0u8, |acc, (a, b)| acc | (a ^ b))
        == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_version_8_and_differ_per_secret() {
        let (a, b) = (InstallSecret::new(), InstallSecret::new());
        assert_eq!(a.install_id().get_version_num(), 8);
        assert_ne!(a.install_id(), b.install_id());
        assert_ne!(a.as_str(), b.as_str());
    }

    #[test]
    fn a_fixed_secret_makes_a_fixed_id() {
        // The derivation is a contract between SDKs and servers of every
        // version: it must never change. (Worked out apart, with Python's
        // hashlib and uuid.)
        let secret = InstallSecret::parse(&"ab".repeat(32)).expect("secret");
        assert_eq!(
            secret.install_id().to_string(),
            "e0d00e1d-3a44-8241-bb7f-bea6f8c90348"
        );
    }

    #[test]
    fn malformed_secrets_are_refused() {
        for bad in [
            "",
            "AB".repeat(32).as_str(),
            &"a".repeat(63),
            &"g".repeat(64),
        ] {
            assert!(InstallSecret::parse(bad).is_none(), "{bad:?}");
        }
        assert!(!owns(Uuid::nil(), &"0".repeat(64)));
    }
}
