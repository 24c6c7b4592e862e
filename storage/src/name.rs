//! Namespace names: validated identifiers, never paths.

use crate::error::{Error, Result};

pub const MAX_NAMESPACE_LEN: usize = 64;

/// Checks that `name` is 1–64 characters of `[A-Za-z0-9._-]` not starting with `.`,
/// so it can never climb out of the data directory or name a hidden file.
pub fn validate_namespace(name: &str) -> Result<()> {
    let fail = |reason| {
        Err(Error::InvalidNamespace {
            name: name.chars().take(80).collect(),
            reason,
        })
    };
    if name.is_empty() {
        return fail("must not be empty");
    }
    if name.len() > MAX_NAMESPACE_LEN {
        return fail("must be at most 64 characters");
    }
    if name.starts_with('.') {
        return fail("must not start with '.'");
    }
    if !name
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
    {
        return fail("may contain only A-Z, a-z, 0-9, '.', '_' and '-'");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_plain_names() {
        for ok in ["a", "users", "rate-limit.v2", "A_b-c.d", &"x".repeat(64)] {
            validate_namespace(ok).unwrap();
        }
    }

    #[test]
    fn rejects_paths_and_bad_names() {
        for bad in [
            "",
            "../etc",
            "..",
            ".hidden",
            "a/b",
            "a\\b",
            "naïve",
            "sp ace",
            &"x".repeat(65),
        ] {
            assert!(
                matches!(validate_namespace(bad), Err(Error::InvalidNamespace { .. })),
                "{bad:?} should be rejected"
            );
        }
    }
}
