//! Time to live: TTL, PTTL, EXPIRE, PEXPIRE, EXPIREAT, PEXPIREAT, PERSIST.
//!
//! dstash keeps a TTL with each value, in seconds. Changing one writes the value again
//! with the new TTL (a new version), after reading it: a write that lands between the
//! read and the rewrite is overwritten by the old value.

use bytes::Bytes;

use super::{arity, failed, int};
use crate::reply::Reply;
use crate::session::{Session, Shared};

/// Unix seconds now.
pub(crate) fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

pub async fn run(shared: &Shared, s: &Session, name: &str, a: &[Bytes]) -> Reply {
    let c = &shared.client;
    let ns = s.ns.as_str();
    match (name, a) {
        ("TTL" | "PTTL", [k]) => match c.get_with_ttl(ns, k).await {
            Ok(None) => Reply::Int(-2),
            Ok(Some((_, 0))) => Reply::Int(-1),
            Ok(Some((_, t))) if name == "PTTL" => Reply::Int(t as i64 * 1000),
            Ok(Some((_, t))) => Reply::Int(t as i64),
            Err(e) => failed(e),
        },
        ("EXPIRE" | "PEXPIRE" | "EXPIREAT" | "PEXPIREAT", [k, when]) => {
            let n = match int(when) {
                Ok(n) => n,
                Err(e) => return e,
            };
            let secs = match name {
                "EXPIRE" => n,
                "PEXPIRE" => (n + 999).div_euclid(1000),
                "EXPIREAT" => n - now(),
                _ => (n + 999).div_euclid(1000) - now(),
            };
            retime(shared, ns, k, Some(secs)).await
        }
        ("PERSIST", [k]) => retime(shared, ns, k, None).await,
        _ => arity(name),
    }
}

/// Writes `k` again with `secs` to live (None: none). A time at or before now deletes
/// the key, as Redis does. 1 when the key was there (and, for PERSIST, had a TTL).
async fn retime(shared: &Shared, ns: &str, k: &[u8], secs: Option<i64>) -> Reply {
    let c = &shared.client;
    let (value, ttl) = match c.get_with_ttl(ns, k).await {
        Ok(Some(e)) => e,
        Ok(None) => return Reply::Int(0),
        Err(e) => return failed(e),
    };
    let written = match secs {
        None if ttl == 0 => return Reply::Int(0),
        None => c.put(ns, k, &value, 0).await,
        Some(t) if t <= 0 => c.delete(ns, k).await.map(drop),
        Some(t) => match u32::try_from(t) {
            Ok(t) => c.put(ns, k, &value, t).await,
            Err(_) => return Reply::err("invalid expire time in 'expire' command"),
        },
    };
    match written {
        Ok(()) => Reply::Int(1),
        Err(e) => failed(e),
    }
}
