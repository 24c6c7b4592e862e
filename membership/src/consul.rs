//! A thin typed client of the Consul agent's HTTP API: the five calls dstash needs.
//!
//! - `PUT /v1/agent/service/register`
//! - `PUT /v1/agent/service/deregister/:id`
//! - `PUT /v1/agent/check/pass/:id` and `/fail/:id`
//! - `GET /v1/health/service/:name?passing&index=&wait=` (a blocking query)

use std::collections::BTreeMap;
use std::time::Duration;

use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper::{Method, Request, StatusCode};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use serde::{Deserialize, Serialize};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("consul at {url}: {reason}")]
    Unreachable { url: String, reason: String },
    #[error("consul answered {status} to {what}: {body}")]
    Status {
        what: String,
        status: u16,
        body: String,
    },
    #[error("consul's answer to {what} is not what its API documents: {reason}")]
    Decode { what: String, reason: String },
    #[error("cannot encode the {what} request: {reason}")]
    Encode { what: String, reason: String },
    #[error("invalid consul address {0:?}: expected http://HOST:PORT")]
    Address(String),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// One service instance as the health endpoint returns it (the fields dstash reads).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Instance {
    pub id: String,
    pub address: String,
    pub port: u16,
    pub meta: BTreeMap<String, String>,
}

impl Instance {
    pub fn addr(&self) -> String {
        format!("{}:{}", self.address, self.port)
    }
}

/// What the node registers.
#[derive(Debug, Clone)]
pub struct Registration {
    pub id: String,
    pub name: String,
    pub address: String,
    pub port: u16,
    pub meta: BTreeMap<String, String>,
    /// The node must pass its TTL check this often or turn critical.
    pub ttl: Duration,
    /// Consul removes the service after its check has been critical this long.
    pub deregister_after: Duration,
}

impl Registration {
    pub fn check_id(&self) -> String {
        format!("dstash:{}:ttl", self.id)
    }
}

fn secs(d: Duration) -> String {
    format!("{}s", d.as_secs().max(1))
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct RegisterBody<'a> {
    #[serde(rename = "ID")]
    id: &'a str,
    name: &'a str,
    address: &'a str,
    port: u16,
    meta: &'a BTreeMap<String, String>,
    checks: Vec<CheckBody>,
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct CheckBody {
    #[serde(rename = "CheckID")]
    check_id: String,
    name: String,
    #[serde(rename = "TTL")]
    ttl: String,
    deregister_critical_service_after: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct HealthEntry {
    service: ServiceBody,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct ServiceBody {
    #[serde(rename = "ID")]
    id: String,
    #[serde(default)]
    address: String,
    port: u16,
    #[serde(default)]
    meta: Option<BTreeMap<String, String>>,
}

#[derive(Clone)]
pub struct Consul {
    base: String,
    http: Client<HttpConnector, Full<Bytes>>,
}

impl std::fmt::Debug for Consul {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Consul({})", self.base)
    }
}

impl Consul {
    /// `url` is `http://HOST:PORT` (a bare `HOST:PORT`, as `CONSUL_HTTP_ADDR` often is,
    /// is taken as http).
    pub fn new(url: &str) -> Result<Self> {
        let url = url.trim().trim_end_matches('/');
        let base = if url.starts_with("http://") {
            url.to_string()
        } else if url.contains("://") {
            return Err(Error::Address(url.to_string()));
        } else {
            format!("http://{url}")
        };
        if base.len() <= "http://".len() {
            return Err(Error::Address(url.to_string()));
        }
        let mut connector = HttpConnector::new();
        connector.set_connect_timeout(Some(Duration::from_secs(2)));
        connector.set_nodelay(true);
        let http = Client::builder(hyper_util::rt::TokioExecutor::new()).build(connector);
        Ok(Self { base, http })
    }

    pub fn url(&self) -> &str {
        &self.base
    }

    async fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<Vec<u8>>,
        deadline: Duration,
    ) -> Result<(StatusCode, hyper::HeaderMap, Bytes)> {
        let url = format!("{}{path}", self.base);
        let unreachable = |reason: String| Error::Unreachable {
            url: url.clone(),
            reason,
        };
        let req = Request::builder()
            .method(method)
            .uri(&url)
            .header("content-type", "application/json")
            .body(Full::new(Bytes::from(body.unwrap_or_default())))
            .map_err(|e| unreachable(e.to_string()))?;
        let resp = tokio::time::timeout(deadline, self.http.request(req))
            .await
            .map_err(|_| unreachable(format!("no answer within {deadline:?}")))?
            .map_err(|e| unreachable(e.to_string()))?;
        let (parts, body) = resp.into_parts();
        let bytes = tokio::time::timeout(deadline, body.collect())
            .await
            .map_err(|_| unreachable("the answer stalled".into()))?
            .map_err(|e| unreachable(e.to_string()))?
            .to_bytes();
        Ok((parts.status, parts.headers, bytes))
    }

    async fn put_ok(&self, what: &str, path: &str, body: Option<Vec<u8>>) -> Result<()> {
        let (status, _, bytes) = self
            .call(Method::PUT, path, body, Duration::from_secs(5))
            .await?;
        if status.is_success() {
            Ok(())
        } else {
            Err(Error::Status {
                what: what.to_string(),
                status: status.as_u16(),
                body: String::from_utf8_lossy(&bytes).trim().to_string(),
            })
        }
    }

    /// Registers (or re-registers: the call is idempotent) the service with its TTL check.
    pub async fn register(&self, r: &Registration) -> Result<()> {
        let body = RegisterBody {
            id: &r.id,
            name: &r.name,
            address: &r.address,
            port: r.port,
            meta: &r.meta,
            checks: vec![CheckBody {
                check_id: r.check_id(),
                name: format!("dstash node {} serving", r.id),
                ttl: secs(r.ttl),
                deregister_critical_service_after: secs(r.deregister_after),
            }],
        };
        let json = serde_json::to_vec(&body).map_err(|e| Error::Encode {
            what: "register".into(),
            reason: e.to_string(),
        })?;
        self.put_ok("register", "/v1/agent/service/register", Some(json))
            .await
    }

    pub async fn deregister(&self, id: &str) -> Result<()> {
        self.put_ok(
            "deregister",
            &format!("/v1/agent/service/deregister/{id}"),
            None,
        )
        .await
    }

    /// Passes (or, with `ok` false, fails) a TTL check.
    pub async fn update_check(&self, check_id: &str, ok: bool, note: &str) -> Result<()> {
        let verb = if ok { "pass" } else { "fail" };
        let note: String = note
            .bytes()
            .map(|b| {
                if b.is_ascii_alphanumeric() {
                    (b as char).to_string()
                } else {
                    format!("%{b:02X}")
                }
            })
            .collect();
        self.put_ok(
            verb,
            &format!("/v1/agent/check/{verb}/{check_id}?note={note}"),
            None,
        )
        .await
    }

    /// The passing instances of `service`, and the index to pass to the next call.
    /// With `index` > 0, Consul holds the answer until something changes past it or
    /// `wait` passes.
    pub async fn healthy(
        &self,
        service: &str,
        index: u64,
        wait: Duration,
    ) -> Result<(Vec<Instance>, u64)> {
        let path = format!(
            "/v1/health/service/{service}?passing&index={index}&wait={}",
            secs(wait)
        );
        // Consul adds up to wait/16 of jitter to a blocking query.
        let deadline = wait + wait / 16 + Duration::from_secs(5);
        let (status, headers, bytes) = self.call(Method::GET, &path, None, deadline).await?;
        let what = format!("GET {path}");
        if !status.is_success() {
            return Err(Error::Status {
                what,
                status: status.as_u16(),
                body: String::from_utf8_lossy(&bytes).trim().to_string(),
            });
        }
        let new_index = headers
            .get("x-consul-index")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok())
            .ok_or_else(|| Error::Decode {
                what: what.clone(),
                reason: "no X-Consul-Index header".into(),
            })?;
        let entries: Vec<HealthEntry> =
            serde_json::from_slice(&bytes).map_err(|e| Error::Decode {
                what,
                reason: e.to_string(),
            })?;
        let instances = entries
            .into_iter()
            .map(|e| Instance {
                id: e.service.id,
                address: e.service.address,
                port: e.service.port,
                meta: e.service.meta.unwrap_or_default(),
            })
            .collect();
        Ok((instances, new_index))
    }
}
