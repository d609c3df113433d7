//! Request ids: `opc-request-id` as OCI uses it.

use aws_lc_rs::rand::{SecureRandom as _, SystemRandom};

/// A new id: 32 upper-case hex digits.
pub(crate) fn new_id() -> String {
    let mut bytes = [0u8; 16];
    // SystemRandom only fails if the OS has no entropy source; a zero id is still unique enough
    // to not take the request down.
    let _ = SystemRandom::new().fill(&mut bytes);
    bytes.iter().map(|b| format!("{b:02X}")).collect()
}

/// The client's own id if it is printable ASCII of at most 256 characters, else a new one.
pub(crate) fn request_id(client: Option<&[u8]>) -> String {
    match client {
        Some(value)
            if !value.is_empty()
                && value.len() <= 256
                && value.iter().all(|b| (0x21..=0x7e).contains(b)) =>
        {
            String::from_utf8_lossy(value).into_owned()
        }
        _ => new_id(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_ids_are_32_upper_hex() {
        let id = new_id();
        assert_eq!(id.len(), 32);
        assert!(id
            .chars()
            .all(|c| c.is_ascii_digit() || c.is_ascii_uppercase()));
        assert_ne!(id, new_id());
    }

    #[test]
    fn client_ids_are_kept_only_when_sane() {
        assert_eq!(request_id(Some(b"abc/DEF-1")), "abc/DEF-1");
        assert_eq!(request_id(Some(b"has space")).len(), 32);
        assert_eq!(request_id(Some(&[b'a'; 257])).len(), 32);
        assert_eq!(request_id(Some(b"")).len(), 32);
        assert_eq!(request_id(None).len(), 32);
    }
}
