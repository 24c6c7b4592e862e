//! Value parsers for the bench flags: numbers with a floor, refused with the floor
//! named rather than clamped behind the caller's back.

fn at_least<T: std::str::FromStr + PartialOrd + std::fmt::Display>(
    s: &str,
    min: T,
) -> Result<T, String>
where
    T::Err: std::fmt::Display,
{
    let v: T = s
        .trim()
        .replace('_', "")
        .parse()
        .map_err(|e| format!("{s:?}: {e}"))?;
    if v < min {
        return Err(format!("{v} is below the minimum {min}"));
    }
    Ok(v)
}

pub fn min<const N: usize>(s: &str) -> Result<usize, String> {
    at_least(s, N)
}

pub fn min_u64<const N: u64>(s: &str) -> Result<u64, String> {
    at_least(s, N)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn floors_are_enforced_and_underscores_allowed() {
        assert_eq!(min::<1>("1_000"), Ok(1000));
        assert!(min::<4>("3").unwrap_err().contains("minimum 4"));
        assert!(min_u64::<1000>("x").is_err());
    }
}
