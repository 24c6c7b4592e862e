//! Anchored glob patterns over key bytes: `*` any run, `?` any one byte, `\` escapes.

use crate::error::{Error, Result};

pub const MAX_PATTERN_LEN: usize = 1024;

#[derive(Debug, Clone, PartialEq, Eq)]
enum Token {
    Byte(u8),
    Any,
    Star,
}

#[derive(Debug, Clone)]
pub struct Glob {
    tokens: Vec<Token>,
}

impl Glob {
    /// Parses `pattern`; `""` matches every key.
    pub fn new(pattern: &str) -> Result<Self> {
        let fail = |reason| {
            Err(Error::InvalidPattern {
                pattern: pattern.chars().take(80).collect(),
                reason,
            })
        };
        if pattern.len() > MAX_PATTERN_LEN {
            return fail("longer than 1024 bytes");
        }
        if pattern.is_empty() {
            return Ok(Self {
                tokens: vec![Token::Star],
            });
        }
        let mut tokens = Vec::with_capacity(pattern.len());
        let mut bytes = pattern.bytes();
        while let Some(b) = bytes.next() {
            tokens.push(match b {
                b'*' => {
                    if tokens.last() == Some(&Token::Star) {
                        continue;
                    }
                    Token::Star
                }
                b'?' => Token::Any,
                b'\\' => match bytes.next() {
                    Some(e) => Token::Byte(e),
                    None => return fail("ends with an unescaped '\\'"),
                },
                b'[' | b']' => {
                    return fail(
                        "character classes are not supported; escape '[' and ']' with '\\'",
                    )
                }
                b => Token::Byte(b),
            });
        }
        Ok(Self { tokens })
    }

    /// Whole-key match, iterative with one backtrack point: O(len(key) * len(pattern)).
    pub fn matches(&self, key: &[u8]) -> bool {
        let (mut p, mut k) = (0, 0);
        let mut star: Option<(usize, usize)> = None;
        while k < key.len() {
            match self.tokens.get(p) {
                Some(Token::Star) => {
                    star = Some((p, k));
                    p += 1;
                }
                Some(Token::Any) => {
                    p += 1;
                    k += 1;
                }
                Some(Token::Byte(b)) if *b == key[k] => {
                    p += 1;
                    k += 1;
                }
                _ => match star {
                    Some((sp, sk)) => {
                        p = sp + 1;
                        k = sk + 1;
                        star = Some((sp, sk + 1));
                    }
                    None => return false,
                },
            }
        }
        self.tokens[p..].iter().all(|t| *t == Token::Star)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn anchored_matching() {
        let cases = [
            ("", "anything", true),
            ("*", "", true),
            ("user:*", "user:42", true),
            ("user:*", "xuser:42", false),
            ("user:?", "user:4", true),
            ("user:?", "user:42", false),
            ("*:42", "user:42", true),
            ("a*b*c", "aXXbYYc", true),
            ("a*b*c", "aXXbYY", false),
            ("a\\*", "a*", true),
            ("a\\*", "ab", false),
            ("exact", "exact", true),
            ("exact", "exactly", false),
        ];
        for (pat, key, want) in cases {
            assert_eq!(
                Glob::new(pat).unwrap().matches(key.as_bytes()),
                want,
                "{pat} vs {key}"
            );
        }
    }

    #[test]
    fn malformed_patterns_are_rejected() {
        for bad in ["abc\\", "[a-z]", &"x".repeat(1025)] {
            assert!(
                matches!(Glob::new(bad), Err(Error::InvalidPattern { .. })),
                "{bad}"
            );
        }
    }
}
