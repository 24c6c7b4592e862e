//! The limits every call is checked against before anything is written.

use crate::error::{Error, Result};
use crate::options::{Options, MAX_KEY_LEN, MAX_RETENTION_SECS, MIN_RETENTION_SECS};

use super::PutEntry;

pub(super) fn check_key(key: &[u8]) -> Result<()> {
    if key.is_empty() {
        return Err(Error::EmptyKey { max: MAX_KEY_LEN });
    }
    if key.len() > MAX_KEY_LEN {
        return Err(Error::KeyTooLarge {
            len: key.len(),
            max: MAX_KEY_LEN,
        });
    }
    Ok(())
}

pub(super) fn check_keys<'a>(
    opts: &Options,
    keys: impl ExactSizeIterator<Item = &'a [u8]>,
) -> Result<()> {
    check_batch(opts, keys.len())?;
    keys.into_iter().try_for_each(check_key)
}

pub(super) fn check_batch(opts: &Options, len: usize) -> Result<()> {
    let max = opts.max_batch_len;
    if len > max {
        return Err(Error::BatchTooLarge { len, max });
    }
    Ok(())
}

pub(super) fn check_put(opts: &Options, e: &PutEntry<'_>) -> Result<()> {
    check_key(e.key)?;
    let max = opts.max_value_len;
    if e.value.len() > max {
        return Err(Error::ValueTooLarge {
            len: e.value.len(),
            max,
        });
    }
    Ok(())
}

/// The largest record must fit an empty segment, after its header; the default
/// counter retention must be one a `NAMESPACE` file can hold.
pub(super) fn check_options(opts: &Options) -> Result<()> {
    if !(MIN_RETENTION_SECS..=MAX_RETENTION_SECS).contains(&opts.retention_secs) {
        return Err(Error::InvalidOptions(format!(
            "counter retention {} s is outside {MIN_RETENTION_SECS}..={MAX_RETENTION_SECS} s",
            opts.retention_secs
        )));
    }
    let largest_record = crate::record::RECORD_HEADER_LEN + MAX_KEY_LEN + opts.max_value_len;
    if opts.segment_size > u32::MAX as u64
        || largest_record as u64 + crate::segment::DATA_START > opts.segment_size
    {
        return Err(Error::InvalidOptions(format!(
            "segment size {} must be at most 4 GiB and hold the largest record (max value {} bytes)",
            opts.segment_size, opts.max_value_len
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options_out_of_range_are_refused_with_the_limit() {
        let mut o = Options::default();
        assert!(check_options(&o).is_ok());
        o.retention_secs = 0;
        assert!(check_options(&o)
            .unwrap_err()
            .to_string()
            .contains("retention 0 s"));
        o.retention_secs = MAX_RETENTION_SECS + 1;
        assert!(check_options(&o).is_err());
        o.retention_secs = MAX_RETENTION_SECS;
        o.segment_size = 1 << 10;
        assert!(check_options(&o)
            .unwrap_err()
            .to_string()
            .contains("segment size"));
    }
}
