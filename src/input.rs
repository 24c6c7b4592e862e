//! Lines of a `load` file: `KEY<TAB>VALUE` (tsv) or `{"key": ..., "value": ..., "ttl": ...}`
//! (jsonl). Parsing never panics: a bad line is an error naming what is wrong with it.

use clap::ValueEnum;

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum Format {
    /// KEY<TAB>VALUE; the value is the rest of the line, tabs included.
    Tsv,
    /// One JSON object per line: "key", "value" (strings), optional "ttl" (seconds).
    Jsonl,
}

#[derive(Debug, PartialEq)]
pub struct Record {
    pub key: Vec<u8>,
    pub value: Vec<u8>,
    pub ttl: Option<u32>,
}

/// Parses one line (without its newline). Blank lines are `Ok(None)`.
pub fn parse(format: Format, line: &[u8]) -> Result<Option<Record>, String> {
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    if line.iter().all(u8::is_ascii_whitespace) {
        return Ok(None);
    }
    match format {
        Format::Tsv => {
            let tab = line
                .iter()
                .position(|&b| b == b'\t')
                .ok_or("no tab between key and value")?;
            if tab == 0 {
                return Err("empty key".into());
            }
            Ok(Some(Record {
                key: line[..tab].to_vec(),
                value: line[tab + 1..].to_vec(),
                ttl: None,
            }))
        }
        Format::Jsonl => {
            let v: serde_json::Value =
                serde_json::from_slice(line).map_err(|e| format!("not JSON: {e}"))?;
            let field = |name: &str| -> Result<Vec<u8>, String> {
                match v.get(name) {
                    Some(serde_json::Value::String(s)) => Ok(s.as_bytes().to_vec()),
                    Some(_) => Err(format!("\"{name}\" is not a string")),
                    None => Err(format!("no \"{name}\"")),
                }
            };
            let ttl = match v.get("ttl") {
                None | Some(serde_json::Value::Null) => None,
                Some(t) => Some(
                    t.as_u64()
                        .and_then(|t| u32::try_from(t).ok())
                        .ok_or("\"ttl\" is not a number of seconds")?,
                ),
            };
            let key = field("key")?;
            if key.is_empty() {
                return Err("empty key".into());
            }
            Ok(Some(Record {
                key,
                value: field("value")?,
                ttl,
            }))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tsv_splits_at_the_first_tab() {
        let r = parse(Format::Tsv, b"k\tv\twith tab\r").unwrap().unwrap();
        assert_eq!((r.key, r.value), (b"k".to_vec(), b"v\twith tab".to_vec()));
        assert_eq!(parse(Format::Tsv, b"  ").unwrap(), None);
        assert!(parse(Format::Tsv, b"no tab").unwrap_err().contains("tab"));
        assert!(parse(Format::Tsv, b"\tv")
            .unwrap_err()
            .contains("empty key"));
    }

    #[test]
    fn jsonl_reads_key_value_and_ttl() {
        let r = parse(Format::Jsonl, br#"{"key":"a","value":"b","ttl":30}"#)
            .unwrap()
            .unwrap();
        assert_eq!(r.ttl, Some(30));
        for (bad, why) in [
            (&br#"{"key":"a"}"#[..], "no \"value\""),
            (br#"{"key":1,"value":"b"}"#, "not a string"),
            (br#"{"key":"a","value":"b","ttl":-1}"#, "ttl"),
            (b"{", "not JSON"),
        ] {
            let e = parse(Format::Jsonl, bad).unwrap_err();
            assert!(e.contains(why), "{e}");
        }
    }
}
