//! `--session-key`: the keys that seal OAUTH2 sessions and per-flow state (AES-256-GCM, the
//! sealing of `crate::shared`). The first key seals, every key opens, so a key is rotated by
//! putting the new one first and dropping the old one once its sessions have ended. Every
//! replica gets the same keys, so any replica serves any step of a login; nothing about a
//! session is kept on the server.

use crate::shared::{SealKey, Sealer};
use base64::Engine as _;
use std::fmt;

/// What a sealed value is for: a value sealed for one purpose never opens as another (a flow
/// cookie is not a session).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Purpose {
    Flow,
    Session,
}

impl Purpose {
    /// The associated data: the purpose and the deployment (`binding`, which holds no newline).
    fn aad(self, binding: &str) -> String {
        let purpose = match self {
            Self::Flow => "claimgate oauth2 flow v2",
            Self::Session => "claimgate oauth2 session v2",
        };
        format!("{purpose}\n{binding}")
    }
}

/// The largest sealed value opened (base64url text): sessions are a few KiB; anything larger
/// is refused before any decoding.
pub const MAX_SEALED_CHARS: usize = 32 * 1024;

/// The keys of `--session-key`, in the order given.
pub struct SessionKeys {
    sealers: Vec<Sealer>,
}

impl fmt::Debug for SessionKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SessionKeys({} keys, [redacted])", self.sealers.len())
    }
}

impl SessionKeys {
    /// `None` without keys (a deployment with OAUTH2 is then refused by `serve`).
    pub fn new(keys: &[SealKey]) -> Option<Self> {
        (!keys.is_empty()).then(|| Self {
            sealers: keys.iter().map(Sealer::new).collect(),
        })
    }

    /// Seals `plain` under the first key, as base64url (a cookie- and header-safe value), for
    /// `purpose` in the deployment `binding` names: it opens only for both (the same keys
    /// serve many deployments; a session of one is not a login at another).
    pub fn seal(&self, purpose: Purpose, binding: &str, plain: &[u8]) -> Option<String> {
        let sealed = self.sealers.first()?.seal(&purpose.aad(binding), plain)?;
        Some(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(sealed))
    }

    /// Opens a value sealed for `purpose` under any of the keys; `None` when it is too long,
    /// not base64url, or opens under none (tampered, another purpose, a dropped key).
    pub fn open(&self, purpose: Purpose, binding: &str, text: &str) -> Option<Vec<u8>> {
        if text.len() > MAX_SEALED_CHARS {
            return None;
        }
        let sealed = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(text.trim())
            .ok()?;
        let aad = purpose.aad(binding);
        // The usual case, one key: opened in the decoded buffer itself (no copy of it).
        if let [sealer] = &self.sealers[..] {
            return sealer.open_owned(&aad, sealed);
        }
        self.sealers
            .iter()
            .find_map(|sealer| sealer.open(&aad, &sealed))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(byte: u8) -> SealKey {
        let text = base64::engine::general_purpose::STANDARD.encode([byte; 32]);
        SealKey::from_base64(&format!("{text}\n")).unwrap()
    }

    #[test]
    fn the_first_key_seals_and_every_key_opens() {
        let old = SessionKeys::new(&[key(1)]).unwrap();
        let rotated = SessionKeys::new(&[key(2), key(1)]).unwrap();
        let new_only = SessionKeys::new(&[key(2)]).unwrap();
        let sealed_old = old.seal(Purpose::Session, "d", b"s").unwrap();
        assert_eq!(
            rotated.open(Purpose::Session, "d", &sealed_old).unwrap(),
            b"s"
        );
        assert_eq!(new_only.open(Purpose::Session, "d", &sealed_old), None);
        let sealed_new = rotated.seal(Purpose::Session, "d", b"t").unwrap();
        assert_eq!(
            new_only.open(Purpose::Session, "d", &sealed_new).unwrap(),
            b"t"
        );
        assert_eq!(old.open(Purpose::Session, "d", &sealed_new), None);
    }

    #[test]
    fn tampered_foreign_or_huge_values_do_not_open() {
        let keys = SessionKeys::new(&[key(1)]).unwrap();
        let sealed = keys.seal(Purpose::Flow, "d", b"flow").unwrap();
        assert_eq!(keys.open(Purpose::Session, "d", &sealed), None);
        // Another deployment's value, under the same keys.
        assert_eq!(keys.open(Purpose::Flow, "other", &sealed), None);
        assert_eq!(keys.open(Purpose::Flow, "d", &sealed).unwrap(), b"flow");
        let mut bytes = sealed.clone().into_bytes();
        let last = bytes.len() - 2;
        bytes[last] = if bytes[last] == b'A' { b'B' } else { b'A' };
        assert_eq!(
            keys.open(Purpose::Flow, "d", &String::from_utf8(bytes).unwrap()),
            None
        );
        assert_eq!(keys.open(Purpose::Flow, "d", "not base64 at all!"), None);
        assert_eq!(keys.open(Purpose::Flow, "d", ""), None);
        assert_eq!(
            keys.open(Purpose::Flow, "d", &"A".repeat(MAX_SEALED_CHARS + 1)),
            None
        );
        assert!(SessionKeys::new(&[]).is_none());
    }
}
