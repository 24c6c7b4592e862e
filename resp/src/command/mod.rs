//! Commands: looked up by name, checked, run through the client, answered with
//! Redis's reply types and error texts.
//!
//! - [`admin`]: the connection and the server (PING, HELLO, AUTH, SELECT, INFO, ...).
//! - [`keys`]: values (GET, SET, MGET, MSET, DEL, EXISTS, KEYS, SCAN, ...).
//! - [`expiry`]: time to live (TTL, EXPIRE, PERSIST, ...).
//! - [`counts`]: expiring counts (CNT.ADD, CNT.COUNT).

mod admin;
mod counts;
mod cursor;
mod expiry;
mod keys;

use bytes::Bytes;

use crate::reply::Reply;
use crate::session::{Session, Shared};

/// What a command leaves the connection to do.
pub enum Outcome {
    Reply(Reply),
    /// Answer, then close (QUIT).
    Close(Reply),
}

impl From<Reply> for Outcome {
    fn from(r: Reply) -> Self {
        Outcome::Reply(r)
    }
}

/// Runs one command.
pub async fn run(shared: &Shared, s: &mut Session, args: Vec<Bytes>) -> Outcome {
    let Some(first) = args.first() else {
        return Reply::err("empty command").into();
    };
    let name = String::from_utf8_lossy(first).to_ascii_uppercase();
    if !s.authed && !matches!(name.as_str(), "AUTH" | "HELLO" | "QUIT") {
        return Reply::Error("NOAUTH Authentication required.".into()).into();
    }
    let rest = &args[1..];
    match name.as_str() {
        "QUIT" => Outcome::Close(Reply::Status("OK")),
        "PING" | "ECHO" | "HELLO" | "AUTH" | "SELECT" | "CLIENT" | "COMMAND" | "CONFIG"
        | "INFO" => admin::run(shared, s, &name, rest).await.into(),
        "CNT.ADD" | "CNT.COUNT" => counts::run(shared, s, &name, rest).await.into(),
        "TTL" | "PTTL" | "EXPIRE" | "PEXPIRE" | "EXPIREAT" | "PEXPIREAT" | "PERSIST" => {
            expiry::run(shared, s, &name, rest).await.into()
        }
        _ => match keys::run(shared, s, &name, rest).await {
            Some(r) => r.into(),
            None => unknown(&name, rest).into(),
        },
    }
}

/// Redis's answer to a command it does not know.
fn unknown(name: &str, rest: &[Bytes]) -> Reply {
    let args: Vec<String> = rest
        .iter()
        .take(8)
        .map(|a| format!("'{}'", String::from_utf8_lossy(a)))
        .collect();
    Reply::err(format!(
        "unknown command '{}', with args beginning with: {}",
        name.to_lowercase(),
        args.join(" ")
    ))
}

pub(crate) fn arity(name: &str) -> Reply {
    Reply::err(format!(
        "wrong number of arguments for '{}' command",
        name.to_lowercase()
    ))
}

pub(crate) fn syntax() -> Reply {
    Reply::err("syntax error")
}

pub(crate) fn failed(e: dstash_client::Error) -> Reply {
    Reply::err(e.to_string())
}

/// An integer argument, or Redis's error for one that is not.
pub(crate) fn int(arg: &[u8]) -> Result<i64, Reply> {
    std::str::from_utf8(arg)
        .ok()
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| Reply::err("value is not an integer or out of range"))
}

pub(crate) fn upper(arg: &[u8]) -> String {
    String::from_utf8_lossy(arg).to_ascii_uppercase()
}
