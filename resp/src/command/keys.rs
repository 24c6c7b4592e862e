//! Values: GET, SET, SETEX, GETDEL, MGET, MSET, DEL, UNLINK, EXISTS, TYPE, KEYS, SCAN,
//! DBSIZE. Each key goes to its owners through the client (placement, R and W,
//! failover, the layout), so any node answers for any key.
//!
//! Where dstash differs from Redis: MSET is a batch, not atomic across keys; SET's NX
//! and XX (and KEEPTTL) read, then write, so two clients racing may both succeed;
//! TTLs have 1 s resolution (PX and PXAT round up to the next second).

use bytes::Bytes;
use dstash_client::PutItem;

use super::{arity, cursor, failed, int, syntax, upper};
use crate::reply::Reply;
use crate::session::{Session, Shared};

/// None when `name` is not a key command.
pub async fn run(shared: &Shared, s: &Session, name: &str, a: &[Bytes]) -> Option<Reply> {
    let c = &shared.client;
    let ns = s.ns.as_str();
    Some(match (name, a) {
        ("GET", [k]) => match c.get(ns, k).await {
            Ok(v) => v.map_or(Reply::Nil, Reply::Bulk),
            Err(e) => failed(e),
        },
        ("SET", [k, v, opts @ ..]) => set(shared, ns, k, v, opts).await,
        ("SETEX", [k, secs, v]) => match int(secs) {
            Ok(t) if t > 0 && t <= u32::MAX as i64 => put(shared, ns, k, v, t as u32).await,
            Ok(_) => Reply::err("invalid expire time in 'setex' command"),
            Err(e) => e,
        },
        ("GETDEL", [k]) => match c.get(ns, k).await {
            Ok(Some(v)) => match c.delete(ns, k).await {
                Ok(_) => Reply::Bulk(v),
                Err(e) => failed(e),
            },
            Ok(None) => Reply::Nil,
            Err(e) => failed(e),
        },
        ("MGET", keys) if !keys.is_empty() => match c.get_many(ns, keys).await {
            Ok(vs) => Reply::Array(
                vs.into_iter()
                    .map(|v| v.map_or(Reply::Nil, Reply::Bulk))
                    .collect(),
            ),
            Err(e) => failed(e),
        },
        ("MSET", kv) if !kv.is_empty() && kv.len().is_multiple_of(2) => mset(shared, ns, kv).await,
        ("DEL" | "UNLINK", [k]) => match c.delete(ns, k).await {
            Ok(existed) => Reply::Int(existed as i64),
            Err(e) => failed(e),
        },
        // Several keys: one BatchDelete per node, all at once.
        ("DEL" | "UNLINK", keys) if !keys.is_empty() => match c.delete_many(ns, keys).await {
            Ok(r) => match r.failed.into_iter().next() {
                None => Reply::Int(r.existed as i64),
                Some((_, e)) => failed(e),
            },
            Err(e) => failed(e),
        },
        ("EXISTS", keys) if !keys.is_empty() => match c.get_many(ns, keys).await {
            Ok(vs) => Reply::Int(vs.iter().filter(|v| v.is_some()).count() as i64),
            Err(e) => failed(e),
        },
        ("TYPE", [k]) => match c.get(ns, k).await {
            Ok(Some(_)) => Reply::Status("string"),
            Ok(None) => Reply::Status("none"),
            Err(e) => failed(e),
        },
        ("KEYS", [pattern]) => listing(shared, ns, pattern).await,
        ("SCAN", [cursor, opts @ ..]) => scan(shared, ns, cursor, opts).await,
        ("DBSIZE", []) => match c.keys(ns, "", false).await {
            Ok(all) => Reply::Int(all.len() as i64),
            Err(e) => failed(e),
        },
        (
            "GET" | "SET" | "SETEX" | "GETDEL" | "MGET" | "MSET" | "DEL" | "UNLINK" | "EXISTS"
            | "TYPE" | "KEYS" | "SCAN" | "DBSIZE",
            _,
        ) => arity(name),
        _ => return None,
    })
}

async fn put(shared: &Shared, ns: &str, k: &[u8], v: &[u8], ttl: u32) -> Reply {
    match shared.client.put(ns, k, v, ttl).await {
        Ok(()) => Reply::Status("OK"),
        Err(e) => failed(e),
    }
}

/// What SET's options ask for.
#[derive(Default)]
struct SetOpts {
    ttl: u32,
    keep_ttl: bool,
    nx: bool,
    xx: bool,
    get: bool,
}

/// Seconds from now until Unix time `at` seconds, at least 1.
fn until(at: i64) -> i64 {
    (at - super::expiry::now()).max(1)
}

fn set_opts(opts: &[Bytes]) -> Result<SetOpts, Reply> {
    let mut o = SetOpts::default();
    let mut expiry = false;
    let mut i = 0;
    while i < opts.len() {
        let word = upper(&opts[i]);
        let ttl = match word.as_str() {
            "NX" => {
                o.nx = true;
                None
            }
            "XX" => {
                o.xx = true;
                None
            }
            "GET" => {
                o.get = true;
                None
            }
            "KEEPTTL" => {
                o.keep_ttl = true;
                None
            }
            "EX" | "PX" | "EXAT" | "PXAT" => {
                let n = int(opts.get(i + 1).ok_or_else(syntax)?)?;
                if n <= 0 || expiry {
                    return Err(match expiry {
                        true => syntax(),
                        false => Reply::err("invalid expire time in 'set' command"),
                    });
                }
                i += 1;
                expiry = true;
                Some(match word.as_str() {
                    "EX" => n,
                    "PX" => (n + 999) / 1000,
                    "EXAT" => until(n),
                    _ => until((n + 999) / 1000),
                })
            }
            _ => return Err(syntax()),
        };
        if let Some(t) = ttl {
            o.ttl =
                u32::try_from(t).map_err(|_| Reply::err("invalid expire time in 'set' command"))?;
        }
        i += 1;
    }
    if (o.nx && o.xx) || (o.keep_ttl && expiry) {
        return Err(syntax());
    }
    Ok(o)
}

async fn set(shared: &Shared, ns: &str, k: &[u8], v: &[u8], opts: &[Bytes]) -> Reply {
    let o = match set_opts(opts) {
        Ok(o) => o,
        Err(e) => return e,
    };
    let old = match o.nx || o.xx || o.get || o.keep_ttl {
        true => match shared.client.get_with_ttl(ns, k).await {
            Ok(old) => old,
            Err(e) => return failed(e),
        },
        false => None,
    };
    let refused = (o.nx && old.is_some()) || (o.xx && old.is_none());
    let ttl = match (o.keep_ttl, &old) {
        (true, Some((_, t))) => *t,
        _ => o.ttl,
    };
    if !refused {
        if let Reply::Error(e) = put(shared, ns, k, v, ttl).await {
            return Reply::Error(e);
        }
    }
    let old = old.map(|(v, _)| v);
    match (o.get, refused) {
        (true, _) => old.map_or(Reply::Nil, Reply::Bulk),
        (false, true) => Reply::Nil,
        (false, false) => Reply::Status("OK"),
    }
}

async fn mset(shared: &Shared, ns: &str, kv: &[Bytes]) -> Reply {
    let items: Vec<PutItem> = kv
        .chunks(2)
        .map(|p| PutItem {
            key: p[0].clone(),
            value: p[1].clone(),
            ttl_seconds: 0,
        })
        .collect();
    let n = items.len();
    let fits = items.iter().all(|i| {
        !i.key.is_empty()
            && i.key.len() <= dstash_storage::MAX_KEY_LEN
            && i.value.len() <= shared.max_value
    });
    if !fits {
        // Its own call, so that its error is its own.
        return match shared.client.put_many(ns, &items).await {
            Ok(r) if r.failed.is_empty() => Reply::Status("OK"),
            Ok(r) => Reply::err(format!(
                "{} of {n} keys were not written: {}",
                r.failed.len(),
                r.failed[0].1
            )),
            Err(e) => failed(e),
        };
    }
    // With other connections' writes, through the batcher.
    let errors: Vec<String> = shared
        .batcher
        .put(ns, items)
        .await
        .into_iter()
        .filter_map(|r| match r {
            Reply::Error(e) => Some(e),
            _ => None,
        })
        .collect();
    match errors.first() {
        None => Reply::Status("OK"),
        Some(first) => Reply::Error(format!(
            "ERR {} of {n} keys were not written: {}",
            errors.len(),
            first.strip_prefix("ERR ").unwrap_or(first)
        )),
    }
}

async fn listing(shared: &Shared, ns: &str, pattern: &[u8]) -> Reply {
    let pattern = String::from_utf8_lossy(pattern);
    let pattern = if pattern == "*" { "" } else { &pattern };
    match shared.client.keys(ns, pattern, false).await {
        Ok(all) => Reply::Array(all.into_iter().map(Reply::Bulk).collect()),
        Err(e) => failed(e),
    }
}

/// `SCAN cursor [MATCH p] [COUNT n] [TYPE string]`: one page of keys and the cursor
/// of the next, 0 once every node was listed (see [`cursor`]).
async fn scan(shared: &Shared, ns: &str, cursor: &[u8], opts: &[Bytes]) -> Reply {
    let Some(at) = cursor::decode(cursor) else {
        return Reply::err("invalid cursor");
    };
    let (mut pattern, mut count) = (Bytes::from_static(b"*"), 10);
    let mut i = 0;
    while i < opts.len() {
        match (upper(&opts[i]).as_str(), opts.get(i + 1)) {
            ("MATCH", Some(p)) => pattern = p.clone(),
            ("COUNT", Some(n)) => match int(n) {
                Ok(n) if n > 0 => count = n.min(10_000) as u32,
                _ => return syntax(),
            },
            ("TYPE", Some(t)) if upper(t) == "STRING" => {}
            _ => return syntax(),
        }
        i += 2;
    }
    let pattern = String::from_utf8_lossy(&pattern);
    let pattern = if pattern == "*" { "" } else { &pattern };
    match shared.client.scan_page(ns, pattern, at, count).await {
        Ok((keys, next)) => Reply::Array(vec![
            Reply::text(&cursor::encode(next).to_string()),
            Reply::Array(keys.into_iter().map(Reply::Bulk).collect()),
        ]),
        Err(e) => failed(e),
    }
}
