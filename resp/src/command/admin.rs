//! The connection and the server: PING, ECHO, HELLO, AUTH, SELECT, CLIENT, COMMAND,
//! CONFIG GET and INFO.

use bytes::Bytes;

use super::{arity, int, syntax, upper};
use crate::reply::Reply;
use crate::session::{Session, Shared};

pub async fn run(shared: &Shared, s: &mut Session, name: &str, a: &[Bytes]) -> Reply {
    match name {
        "PING" => match a {
            [] => Reply::Status("PONG"),
            [msg] => Reply::bulk(msg.clone()),
            _ => arity(name),
        },
        "ECHO" => match a {
            [msg] => Reply::bulk(msg.clone()),
            _ => arity(name),
        },
        "HELLO" => hello(shared, s, a),
        "AUTH" => match a {
            [token] | [_, token] => auth(shared, s, token),
            _ => arity(name),
        },
        "SELECT" => match a {
            [ns] => select(shared, s, ns),
            _ => arity(name),
        },
        "CLIENT" => client(s, a),
        "COMMAND" => match a.first().map(|c| upper(c)).as_deref() {
            None | Some("DOCS") | Some("INFO") | Some("LIST") => Reply::Array(Vec::new()),
            Some("COUNT") => Reply::Int(0),
            Some(_) => syntax(),
        },
        "CONFIG" => config(a),
        _ => info(shared, s),
    }
}

/// `HELLO [2|3 [AUTH user token] [SETNAME name]]`: switches the protocol and answers
/// who the server is.
fn hello(shared: &Shared, s: &mut Session, a: &[Bytes]) -> Reply {
    let mut proto = s.proto;
    if let Some(v) = a.first() {
        match int(v) {
            Ok(v @ 2..=3) => proto = v as u8,
            _ => return Reply::Error("NOPROTO unsupported protocol version".into()),
        }
    }
    let mut i = 1;
    while i < a.len() {
        match (upper(&a[i]).as_str(), a.get(i + 1), a.get(i + 2)) {
            ("AUTH", Some(_), Some(token)) => {
                if let Reply::Error(e) = auth(shared, s, token) {
                    return Reply::Error(e);
                }
                i += 3;
            }
            ("SETNAME", Some(n), _) => {
                s.name = Some(n.clone());
                i += 2;
            }
            _ => return syntax(),
        }
    }
    if !s.authed {
        return Reply::Error(
            "NOAUTH HELLO must be called with the client already authenticated, otherwise the HELLO <proto> AUTH <user> <pass> option can be used to authenticate the client and select the RESP protocol version at the same time".into(),
        );
    }
    s.proto = proto;
    Reply::Map(vec![
        (Reply::text("server"), Reply::text("dstash")),
        (
            Reply::text("version"),
            Reply::text(env!("CARGO_PKG_VERSION")),
        ),
        (Reply::text("proto"), Reply::Int(proto as i64)),
        (Reply::text("id"), Reply::Int(s.id as i64)),
        (Reply::text("mode"), Reply::text("standalone")),
        (Reply::text("role"), Reply::text("master")),
        (Reply::text("modules"), Reply::Array(Vec::new())),
    ])
}

fn auth(shared: &Shared, s: &mut Session, token: &[u8]) -> Reply {
    match &shared.token {
        None => Reply::err(
            "AUTH <password> called without any password configured for the default user. Are you sure your configuration is correct?",
        ),
        Some(t) if constant_time_eq(t.as_bytes(), token) => {
            s.authed = true;
            Reply::Status("OK")
        }
        Some(_) => Reply::Error(
            "WRONGPASS invalid username-password pair or user is disabled.".into(),
        ),
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |d, (x, y)| d | (x ^ y)) == 0
}

/// `SELECT name`: the namespace later commands use. `SELECT 0`, which many clients
/// send at connect, is the listener's default namespace.
fn select(shared: &Shared, s: &mut Session, ns: &[u8]) -> Reply {
    let name = String::from_utf8_lossy(ns).into_owned();
    if name == "0" {
        s.ns = shared.namespace.clone();
        return Reply::Status("OK");
    }
    match dstash_storage::validate_namespace(&name) {
        Ok(()) => {
            s.ns = name;
            Reply::Status("OK")
        }
        Err(e) => Reply::err(e.to_string()),
    }
}

fn client(s: &mut Session, a: &[Bytes]) -> Reply {
    match (a.first().map(|c| upper(c)).as_deref(), &a[a.len().min(1)..]) {
        (Some("SETNAME"), [n]) => {
            s.name = Some(n.clone());
            Reply::Status("OK")
        }
        (Some("GETNAME"), []) => s.name.clone().map_or(Reply::Nil, Reply::Bulk),
        (Some("ID"), []) => Reply::Int(s.id as i64),
        (Some("SETINFO"), [_, _]) => Reply::Status("OK"),
        (Some(sub @ ("SETNAME" | "GETNAME" | "ID" | "SETINFO")), _) => {
            arity(&format!("client|{sub}"))
        }
        _ => Reply::err("CLIENT subcommand not supported: SETNAME, GETNAME, ID and SETINFO are"),
    }
}

/// `CONFIG GET pattern...`: what tools such as redis-benchmark ask. dstash persists
/// every write, so `save` is empty and `appendonly` is yes.
fn config(a: &[Bytes]) -> Reply {
    let known = [("save", ""), ("appendonly", "yes")];
    match (a.first().map(|c| upper(c)).as_deref(), &a[a.len().min(1)..]) {
        (Some("GET"), patterns) if !patterns.is_empty() => Reply::Map(
            known
                .iter()
                .filter(|(k, _)| patterns.iter().any(|p| glob_match(p, k.as_bytes())))
                .map(|(k, v)| (Reply::text(k), Reply::text(v)))
                .collect(),
        ),
        (Some("GET"), _) => arity("config|get"),
        _ => Reply::err("CONFIG: only GET is supported"),
    }
}

/// `*` and `?` globbing, for CONFIG GET.
fn glob_match(p: &[u8], s: &[u8]) -> bool {
    match (p.first(), s.first()) {
        (None, None) => true,
        (Some(b'*'), _) => glob_match(&p[1..], s) || (!s.is_empty() && glob_match(p, &s[1..])),
        (Some(b'?'), Some(_)) => glob_match(&p[1..], &s[1..]),
        (Some(a), Some(b)) if a.eq_ignore_ascii_case(b) => glob_match(&p[1..], &s[1..]),
        _ => false,
    }
}

fn info(shared: &Shared, s: &Session) -> Reply {
    let text = format!(
        "# Server\r\nredis_version:7.2.0\r\ndstash_version:{}\r\nredis_mode:standalone\r\n\
         # Clients\r\nconnected_clients:{}\r\n\
         # Persistence\r\naof_enabled:1\r\nrdb_bgsave_in_progress:0\r\n\
         # Keyspace\r\nnamespace:{}\r\ndefault_namespace:{}\r\n",
        env!("CARGO_PKG_VERSION"),
        shared.connections(),
        s.ns,
        shared.namespace
    );
    Reply::text(&text)
}

#[cfg(test)]
mod tests {
    use super::glob_match;

    #[test]
    fn config_patterns_glob() {
        assert!(glob_match(b"*", b"save"));
        assert!(glob_match(b"APPEND*", b"appendonly"));
        assert!(glob_match(b"s?ve", b"save"));
        assert!(!glob_match(b"save?", b"save"));
    }
}
