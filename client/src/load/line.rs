//! Lines of a load or lookup file.
//!
//! - **tsv**: `KEY<TAB>VALUE`; the value is the rest of the line, tabs included.
//! - **jsonl**: one JSON object per line. `"key"` and `"value"` are strings (JSON escapes
//!   carry newlines, tabs and any other character); bytes that are not UTF-8 go as
//!   `"key_base64"` / `"value_base64"` (standard alphabet, padded) instead. An optional
//!   `"ttl"` gives seconds to live. What [`encode_jsonl`] writes, [`parse`] reads back
//!   byte for byte.
//!
//! Parsing never panics: a bad line is an error naming what is wrong with it.

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine;
use serde_json::{Map, Value};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LineFormat {
    Tsv,
    Jsonl,
    /// The whole line is a key (for deletes).
    Keys,
}

#[derive(Debug, PartialEq)]
pub struct Line {
    pub key: Vec<u8>,
    pub value: Vec<u8>,
    pub ttl: Option<u32>,
}

/// Parses one line (without its newline). Blank lines are `Ok(None)`.
pub fn parse(format: LineFormat, line: &[u8]) -> Result<Option<Line>, String> {
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    if line.iter().all(u8::is_ascii_whitespace) {
        return Ok(None);
    }
    let l = match format {
        LineFormat::Tsv => parse_tsv(line)?,
        LineFormat::Jsonl => parse_jsonl(line)?,
        LineFormat::Keys => Line {
            key: line.to_vec(),
            value: Vec::new(),
            ttl: None,
        },
    };
    if l.key.is_empty() {
        return Err("empty key".into());
    }
    Ok(Some(l))
}

fn parse_tsv(line: &[u8]) -> Result<Line, String> {
    let tab = line
        .iter()
        .position(|&b| b == b'\t')
        .ok_or("no tab between key and value")?;
    Ok(Line {
        key: line[..tab].to_vec(),
        value: line[tab + 1..].to_vec(),
        ttl: None,
    })
}

fn parse_jsonl(line: &[u8]) -> Result<Line, String> {
    let v: Value = serde_json::from_slice(line).map_err(|e| format!("not JSON: {e}"))?;
    let ttl = match v.get("ttl") {
        None | Some(Value::Null) => None,
        Some(t) => Some(
            t.as_u64()
                .and_then(|t| u32::try_from(t).ok())
                .ok_or("\"ttl\" is not a number of seconds")?,
        ),
    };
    Ok(Line {
        key: bytes_field(&v, "key")?,
        value: bytes_field(&v, "value")?,
        ttl,
    })
}

/// `name` as a string, or `name_base64` decoded; exactly one of them.
fn bytes_field(v: &Value, name: &str) -> Result<Vec<u8>, String> {
    let b64 = format!("{name}_base64");
    match (v.get(name), v.get(&b64)) {
        (Some(Value::String(s)), None) => Ok(s.as_bytes().to_vec()),
        (None, Some(Value::String(s))) => BASE64
            .decode(s)
            .map_err(|e| format!("\"{b64}\" is not base64: {e}")),
        (Some(_), Some(_)) => Err(format!("both \"{name}\" and \"{b64}\"")),
        (Some(_), None) => Err(format!("\"{name}\" is not a string")),
        (None, Some(_)) => Err(format!("\"{b64}\" is not a string")),
        (None, None) => Err(format!("no \"{name}\"")),
    }
}

fn put_bytes(obj: &mut Map<String, Value>, name: &str, bytes: &[u8]) {
    match std::str::from_utf8(bytes) {
        Ok(s) => obj.insert(name.into(), Value::String(s.into())),
        Err(_) => obj.insert(
            format!("{name}_base64"),
            Value::String(BASE64.encode(bytes)),
        ),
    };
}

/// One JSON line (without its newline) for a key and, when given, its value.
pub fn encode_jsonl(key: &[u8], value: Option<&[u8]>) -> String {
    encode_jsonl_ttl(key, value, 0)
}

/// [`encode_jsonl`] with a `ttl` (seconds to live) when it is not 0: what `load`
/// reads back.
pub fn encode_jsonl_ttl(key: &[u8], value: Option<&[u8]>, ttl: u32) -> String {
    let mut obj = Map::new();
    put_bytes(&mut obj, "key", key);
    if let Some(v) = value {
        put_bytes(&mut obj, "value", v);
    }
    if ttl != 0 {
        obj.insert("ttl".into(), Value::from(ttl));
    }
    Value::Object(obj).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tsv_splits_at_the_first_tab() {
        let r = parse(LineFormat::Tsv, b"k\tv\twith tab\r")
            .unwrap()
            .unwrap();
        assert_eq!((r.key, r.value), (b"k".to_vec(), b"v\twith tab".to_vec()));
        assert_eq!(parse(LineFormat::Tsv, b"  ").unwrap(), None);
        assert!(parse(LineFormat::Tsv, b"no tab")
            .unwrap_err()
            .contains("tab"));
        assert!(parse(LineFormat::Tsv, b"\tv")
            .unwrap_err()
            .contains("empty key"));
    }

    #[test]
    fn jsonl_reads_key_value_and_ttl() {
        let r = parse(LineFormat::Jsonl, br#"{"key":"a","value":"b","ttl":30}"#)
            .unwrap()
            .unwrap();
        assert_eq!(r.ttl, Some(30));
        for (bad, why) in [
            (&br#"{"key":"a"}"#[..], "no \"value\""),
            (br#"{"key":1,"value":"b"}"#, "not a string"),
            (br#"{"key":"a","value":"b","ttl":-1}"#, "ttl"),
            (br#"{"key":"a","key_base64":"YQ==","value":"b"}"#, "both"),
            (br#"{"key_base64":"!!","value":"b"}"#, "not base64"),
            (br#"{"key":"","value":"b"}"#, "empty key"),
            (b"{", "not JSON"),
        ] {
            let e = parse(LineFormat::Jsonl, bad).unwrap_err();
            assert!(e.contains(why), "{e}");
        }
    }

    #[test]
    fn any_bytes_round_trip_through_jsonl() {
        let cases: [(&[u8], &[u8]); 4] = [
            (b"plain", b"value"),
            (b"new\nline", b"tab\there \"quoted\" \\ back"),
            (b"\xff\x00bin", b"\x80\x81"),
            ("ключ".as_bytes(), b"\r\n"),
        ];
        for (k, v) in cases {
            let line = encode_jsonl(k, Some(v));
            assert!(!line.contains('\n'), "{line}");
            let back = parse(LineFormat::Jsonl, line.as_bytes()).unwrap().unwrap();
            assert_eq!(
                (back.key.as_slice(), back.value.as_slice()),
                (k, v),
                "{line}"
            );
        }
        assert_eq!(encode_jsonl(b"\xff", None), r#"{"key_base64":"/w=="}"#);
    }
}
