//! The signature algorithms claimgate verifies (RFC 7518 §3, RFC 8037, RFC 9864).
//!
//! OCI itself accepts only RS256/384/512. HMAC is deliberately absent: OCI has no shared-secret
//! keys, and leaving it out removes the RSA-public-key-as-HMAC-secret confusion entirely.

use std::fmt;

/// A JWS `alg` value that claimgate can verify.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Algorithm {
    RS256,
    RS384,
    RS512,
    PS256,
    PS384,
    PS512,
    ES256,
    ES384,
    ES512,
    /// `EdDSA` with an Ed25519 key (RFC 8037).
    EdDSA,
    /// The fully-specified name for the same algorithm (RFC 9864).
    Ed25519,
}

impl Algorithm {
    /// Every algorithm, in a stable order.
    pub const ALL: [Self; 11] = [
        Self::RS256,
        Self::RS384,
        Self::RS512,
        Self::PS256,
        Self::PS384,
        Self::PS512,
        Self::ES256,
        Self::ES384,
        Self::ES512,
        Self::EdDSA,
        Self::Ed25519,
    ];

    /// Parses an `alg` value. The comparison is exact: `alg` is case-sensitive (RFC 7515
    /// §4.1.1), so `rs256` or `None` are unknown, never normalised.
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|alg| alg.name() == name)
    }

    /// The registered name.
    pub fn name(self) -> &'static str {
        match self {
            Self::RS256 => "RS256",
            Self::RS384 => "RS384",
            Self::RS512 => "RS512",
            Self::PS256 => "PS256",
            Self::PS384 => "PS384",
            Self::PS512 => "PS512",
            Self::ES256 => "ES256",
            Self::ES384 => "ES384",
            Self::ES512 => "ES512",
            Self::EdDSA => "EdDSA",
            Self::Ed25519 => "Ed25519",
        }
    }

    /// Whether OCI API Gateway itself accepts this algorithm.
    pub fn is_oci_supported(self) -> bool {
        matches!(self, Self::RS256 | Self::RS384 | Self::RS512)
    }

    pub(crate) fn index(self) -> usize {
        self as usize
    }
}

impl fmt::Display for Algorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A small set of algorithms, as a bit mask.
#[derive(Clone, Copy, PartialEq, Eq, Default, Hash)]
pub struct AlgorithmSet(u16);

impl AlgorithmSet {
    /// No algorithm.
    pub const EMPTY: Self = Self(0);

    /// A set of the given algorithms.
    pub fn of(algs: &[Algorithm]) -> Self {
        algs.iter().fold(Self::EMPTY, |set, alg| set.with(*alg))
    }

    /// This set plus `alg`.
    #[must_use]
    pub fn with(self, alg: Algorithm) -> Self {
        Self(self.0 | 1 << alg.index())
    }

    /// Whether `alg` is in the set.
    pub fn contains(self, alg: Algorithm) -> bool {
        self.0 & (1 << alg.index()) != 0
    }

    /// The union of two sets.
    #[must_use]
    pub fn union(self, other: Self) -> Self {
        Self(self.0 | other.0)
    }

    /// The intersection of two sets.
    #[must_use]
    pub fn intersection(self, other: Self) -> Self {
        Self(self.0 & other.0)
    }

    /// Whether the set is empty.
    pub fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// The members, in [`Algorithm::ALL`] order.
    pub fn iter(self) -> impl Iterator<Item = Algorithm> {
        Algorithm::ALL
            .into_iter()
            .filter(move |alg| self.contains(*alg))
    }

    /// The member names.
    pub fn names(self) -> Vec<&'static str> {
        self.iter().map(Algorithm::name).collect()
    }
}

impl fmt::Debug for AlgorithmSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_set().entries(self.names()).finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_exactly() {
        for alg in Algorithm::ALL {
            assert_eq!(Algorithm::from_name(alg.name()), Some(alg));
        }
    }

    #[test]
    fn unknown_and_case_variants_are_refused() {
        for name in [
            "none", "None", "NONE", "nOnE", " none", "none\0", "rs256", "HS256", "",
        ] {
            assert_eq!(Algorithm::from_name(name), None, "{name:?}");
        }
    }

    #[test]
    fn sets_hold_what_was_put_in() {
        let set = AlgorithmSet::of(&[Algorithm::RS256, Algorithm::ES512]);
        assert!(set.contains(Algorithm::RS256));
        assert!(!set.contains(Algorithm::RS384));
        assert_eq!(set.names(), vec!["RS256", "ES512"]);
        assert!(set
            .intersection(AlgorithmSet::of(&[Algorithm::PS256]))
            .is_empty());
    }
}
