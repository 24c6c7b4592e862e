//! Expiring counts: `CNT.ADD key [n]` answers the live count, `CNT.COUNT key
//! [window_seconds]` the count over the window (0 or none: the namespace's retention).

use bytes::Bytes;

use super::{arity, failed, int};
use crate::reply::Reply;
use crate::session::{Session, Shared};

pub async fn run(shared: &Shared, s: &Session, name: &str, a: &[Bytes]) -> Reply {
    let c = &shared.client;
    let n = |i: usize, what: &str| match a.get(i) {
        None => Ok(if what == "n" { 1 } else { 0 }),
        Some(v) => match int(v) {
            Ok(n) if (0..=u32::MAX as i64).contains(&n) => Ok(n as u32),
            _ => Err(Reply::err(format!(
                "{what} must be an integer from 0 to {}",
                u32::MAX
            ))),
        },
    };
    match (name, a.len()) {
        ("CNT.ADD", 1 | 2) => match n(1, "n") {
            // One event of a key within the limits: with other connections' adds.
            Ok(0 | 1) if !a[0].is_empty() && a[0].len() <= dstash_storage::MAX_KEY_LEN => {
                let mut r = shared.batcher.add(&s.ns, vec![a[0].clone()]).await;
                r.pop().unwrap_or_else(|| Reply::err("no answer"))
            }
            Ok(n) => match c.add(&s.ns, &a[0], n.max(1)).await {
                Ok(count) => Reply::Int(count as i64),
                Err(e) => failed(e),
            },
            Err(e) => e,
        },
        ("CNT.COUNT", 1 | 2) => match n(1, "window_seconds") {
            Ok(w) => match c.count(&s.ns, &a[0], w, false).await {
                Ok(count) => Reply::Int(count as i64),
                Err(e) => failed(e),
            },
            Err(e) => e,
        },
        _ => arity(name),
    }
}
