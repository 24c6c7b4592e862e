//! An in-process Consul double for tests: the agent and health endpoints dstash uses,
//! behaving as Consul documents them, with knobs for the faults a real cluster has.
//!
//! - register and deregister (404 for an unknown service id);
//! - TTL checks: new ones start critical; pass and fail (500 for an unknown check id);
//!   a check not passed within its TTL turns critical, and a service critical longer
//!   than its DeregisterCriticalServiceAfter is removed;
//! - `GET /v1/health/service/:name`: `?passing` filters after the query; results are
//!   shuffled; `X-Consul-Index` is set, and `index` with `wait` blocks until the index
//!   moves past it or the wait ends;
//! - faults: an agent restart that loses every registration, 500s as on leader loss, and
//!   an index that goes backwards.

#![allow(
    clippy::expect_used,
    reason = "a test double: failing to bind loopback must stop the test at once"
)]

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, put};
use axum::Router;
use rand::seq::SliceRandom;
use serde_json::{json, Value};
use tokio::sync::watch;

#[derive(Debug, Clone)]
struct Check {
    id: String,
    ttl: Option<Duration>,
    passing: bool,
    deadline: Option<Instant>,
    deregister_after: Option<Duration>,
    critical_since: Option<Instant>,
}

#[derive(Debug, Clone)]
struct Service {
    name: String,
    address: String,
    port: u16,
    meta: BTreeMap<String, String>,
    checks: Vec<Check>,
}

#[derive(Default)]
struct Inner {
    services: BTreeMap<String, Service>,
    index: u64,
    leader_lost: bool,
}

#[derive(Clone)]
struct Shared {
    inner: Arc<Mutex<Inner>>,
    index_tx: Arc<watch::Sender<u64>>,
    /// Check pass and fail calls received.
    check_updates: Arc<std::sync::atomic::AtomicU64>,
}

impl Shared {
    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Bumps the index under the lock and wakes blocking queries.
    fn changed(&self, inner: &mut Inner) {
        inner.index += 1;
        let _ = self.index_tx.send(inner.index);
    }
}

/// Parses Consul durations: "15s", "1m", "500ms", "1h".
fn duration(v: &Value) -> Option<Duration> {
    let s = v.as_str()?;
    let (num, unit) = s.split_at(s.find(|c: char| c.is_ascii_alphabetic())?);
    let n: f64 = num.parse().ok()?;
    let secs = match unit {
        "ms" => n / 1000.0,
        "s" => n,
        "m" => n * 60.0,
        "h" => n * 3600.0,
        _ => return None,
    };
    Some(Duration::from_secs_f64(secs))
}

fn field<'a>(v: &'a Value, name: &str) -> Option<&'a Value> {
    v.get(name)
}

async fn register(State(s): State<Shared>, body: String) -> Response {
    let Ok(v) = serde_json::from_str::<Value>(&body) else {
        return (StatusCode::BAD_REQUEST, "Request decode failed").into_response();
    };
    let Some(name) = field(&v, "Name").and_then(Value::as_str) else {
        return (StatusCode::BAD_REQUEST, "Missing service name").into_response();
    };
    let id = field(&v, "ID")
        .and_then(Value::as_str)
        .unwrap_or(name)
        .to_string();
    let mut check_defs: Vec<Value> = field(&v, "Checks")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    if let Some(c) = field(&v, "Check") {
        check_defs.push(c.clone());
    }
    let now = Instant::now();
    let checks = check_defs
        .iter()
        .enumerate()
        .map(|(i, c)| Check {
            id: field(c, "CheckID")
                .and_then(Value::as_str)
                .map(str::to_string)
                .unwrap_or_else(|| format!("service:{id}:{}", i + 1)),
            ttl: field(c, "TTL").and_then(duration),
            // Consul starts TTL checks critical until the first pass.
            passing: false,
            deadline: None,
            deregister_after: field(c, "DeregisterCriticalServiceAfter").and_then(duration),
            critical_since: Some(now),
        })
        .collect();
    let service = Service {
        name: name.to_string(),
        address: field(&v, "Address")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string(),
        port: field(&v, "Port").and_then(Value::as_u64).unwrap_or(0) as u16,
        meta: field(&v, "Meta")
            .and_then(|m| serde_json::from_value(m.clone()).ok())
            .unwrap_or_default(),
        checks,
    };
    let mut inner = s.lock();
    inner.services.insert(id, service);
    s.changed(&mut inner);
    StatusCode::OK.into_response()
}

async fn deregister(State(s): State<Shared>, Path(id): Path<String>) -> Response {
    let mut inner = s.lock();
    if inner.services.remove(&id).is_none() {
        return (StatusCode::NOT_FOUND, format!("Unknown service ID {id:?}")).into_response();
    }
    s.changed(&mut inner);
    StatusCode::OK.into_response()
}

fn update(s: &Shared, id: &str, passing: bool) -> Response {
    s.check_updates
        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let mut inner = s.lock();
    let now = Instant::now();
    let mut found = false;
    let mut moved = false;
    for svc in inner.services.values_mut() {
        for c in svc.checks.iter_mut().filter(|c| c.id == id) {
            found = true;
            moved |= c.passing != passing;
            c.passing = passing;
            c.deadline = c.ttl.map(|t| now + t);
            c.critical_since = if passing {
                None
            } else {
                c.critical_since.or(Some(now))
            };
        }
    }
    if !found {
        return (
            StatusCode::INTERNAL_SERVER_ERROR,
            format!(
                "Unknown check ID {id:?}. Ensure that the check ID is passed, not the check name."
            ),
        )
            .into_response();
    }
    if moved {
        s.changed(&mut inner);
    }
    StatusCode::OK.into_response()
}

async fn pass(State(s): State<Shared>, Path(id): Path<String>) -> Response {
    update(&s, &id, true)
}

async fn fail(State(s): State<Shared>, Path(id): Path<String>) -> Response {
    update(&s, &id, false)
}

async fn health(
    State(s): State<Shared>,
    Path(name): Path<String>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let want: u64 = q.get("index").and_then(|i| i.parse().ok()).unwrap_or(0);
    let wait = q
        .get("wait")
        .and_then(|w| duration(&Value::String(w.clone())))
        .unwrap_or(Duration::from_secs(300))
        .min(Duration::from_secs(600));
    let mut rx = s.index_tx.subscribe();
    if want > 0 && *rx.borrow() <= want {
        // Blocks until the index moves past `want` or the wait ends.
        let _ = tokio::time::timeout(wait, async {
            while *rx.borrow_and_update() <= want {
                if rx.changed().await.is_err() {
                    break;
                }
            }
        })
        .await;
    }
    let inner = s.lock();
    if inner.leader_lost {
        return (StatusCode::INTERNAL_SERVER_ERROR, "No cluster leader").into_response();
    }
    let passing_only = q.contains_key("passing");
    let mut entries: Vec<Value> = inner
        .services
        .iter()
        .filter(|(_, svc)| svc.name == name)
        // `?passing` filters after the query, as Consul's does.
        .filter(|(_, svc)| !passing_only || svc.checks.iter().all(|c| c.passing))
        .map(|(id, svc)| {
            json!({
                "Node": {"Node": "double", "Address": "127.0.0.1"},
                "Service": {"ID": id, "Service": svc.name, "Address": svc.address,
                            "Port": svc.port, "Meta": svc.meta},
                "Checks": svc.checks.iter().map(|c| json!({
                    "CheckID": c.id, "ServiceID": id,
                    "Status": if c.passing { "passing" } else { "critical" },
                })).collect::<Vec<_>>(),
            })
        })
        .collect();
    entries.shuffle(&mut rand::thread_rng());
    let mut headers = HeaderMap::new();
    headers.insert(
        "x-consul-index",
        inner.index.to_string().parse().expect("digits"),
    );
    (headers, axum::Json(Value::Array(entries))).into_response()
}

/// TTL expiry and critical-service reaping, as the agent does in the background.
fn tick(s: &Shared) {
    let mut inner = s.lock();
    let now = Instant::now();
    let mut moved = false;
    for svc in inner.services.values_mut() {
        for c in &mut svc.checks {
            if c.passing && c.deadline.is_some_and(|d| now >= d) {
                c.passing = false;
                c.critical_since = Some(now);
                moved = true;
            }
        }
    }
    let before = inner.services.len();
    inner.services.retain(|_, svc| {
        !svc.checks.iter().any(|c| {
            matches!((c.deregister_after, c.critical_since), (Some(after), Some(since)) if now >= since + after)
        })
    });
    if moved || inner.services.len() != before {
        s.changed(&mut inner);
    }
}

/// A running double on `127.0.0.1:0`; stops when dropped.
pub struct ConsulDouble {
    addr: SocketAddr,
    shared: Shared,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl ConsulDouble {
    pub async fn start() -> ConsulDouble {
        let (index_tx, _) = watch::channel(1);
        let shared = Shared {
            inner: Arc::new(Mutex::new(Inner {
                index: 1,
                ..Inner::default()
            })),
            index_tx: Arc::new(index_tx),
            check_updates: Arc::default(),
        };
        let app = Router::new()
            .route("/v1/agent/service/register", put(register))
            .route("/v1/agent/service/deregister/{id}", put(deregister))
            .route("/v1/agent/check/pass/{id}", put(pass))
            .route("/v1/agent/check/fail/{id}", put(fail))
            .route("/v1/health/service/{name}", get(health))
            .with_state(shared.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("a loopback port");
        let addr = listener.local_addr().expect("bound");
        let server = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        let ticker = {
            let shared = shared.clone();
            tokio::spawn(async move {
                loop {
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    tick(&shared);
                }
            })
        };
        ConsulDouble {
            addr,
            shared,
            tasks: vec![server, ticker],
        }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// An agent restart: every registration is lost (a dev agent also starts its index
    /// over, which clients see as the index going backwards).
    pub fn restart(&self) {
        let mut inner = self.shared.lock();
        inner.services.clear();
        inner.index = 1;
        let _ = self.shared.index_tx.send(1);
    }

    /// While set, health queries answer 500 "No cluster leader".
    pub fn set_leader_lost(&self, lost: bool) {
        let mut inner = self.shared.lock();
        inner.leader_lost = lost;
        self.shared.changed(&mut inner);
    }

    /// Moves the index back, as after a snapshot restore.
    pub fn index_backwards(&self) {
        let mut inner = self.shared.lock();
        inner.index = 1;
        let _ = self.shared.index_tx.send(1);
    }

    /// The ids of registered services named `name`, and whether each is passing.
    pub fn services(&self, name: &str) -> BTreeMap<String, bool> {
        self.shared
            .lock()
            .services
            .iter()
            .filter(|(_, s)| s.name == name)
            .map(|(id, s)| (id.clone(), s.checks.iter().all(|c| c.passing)))
            .collect()
    }

    /// Check pass and fail calls received so far.
    pub fn check_updates(&self) -> u64 {
        self.shared
            .check_updates
            .load(std::sync::atomic::Ordering::Relaxed)
    }

    pub fn index(&self) -> u64 {
        self.shared.lock().index
    }
}

impl Drop for ConsulDouble {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}
