//! Dumps: every live key of a namespace with its newest value and TTL, each key once,
//! a page at a time, without holding the key set.
//!
//! The walk lists node by node in id order (the paged listing SCAN uses). A key listed
//! by node `i` is taken there only when `i` is one of its read replicas and every
//! replica before `i` in the walk failed to list; so each key is taken by the first
//! replica that listed it. Its value is then read as `get_many` reads it: read quorum,
//! newest version across replicas. A node that fails part way through its listing
//! leaves the keys it gave taken, and a later replica takes them again: such a dump may
//! name a key twice (loading it back writes the same value twice).

use dstash_proto::Bytes;

use crate::client::Client;
use crate::error::{Error, NodeFailure, Result};
use crate::scan::ScanAt;

/// One key of a dump.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dumped {
    pub key: Bytes,
    pub value: Bytes,
    /// Seconds left to live when read; 0: never expires.
    pub ttl_seconds: u32,
    pub version: dstash_cluster::Version,
}

/// What a dump did.
#[derive(Debug, Default)]
pub struct DumpSummary {
    pub keys: u64,
    /// Nodes whose listing failed: their keys came from other replicas.
    pub failed: Vec<NodeFailure>,
}

impl Client {
    /// Every live key of `ns` matching `pattern`, each once (see the module), handed to
    /// `out` a page of about `page` keys at a time. Fails when a listing is refused, a
    /// key cannot be read, `out` fails, or R nodes failed (keys may then be missing).
    pub async fn dump(
        &self,
        ns: &str,
        pattern: &str,
        page: u32,
        mut out: impl FnMut(Vec<Dumped>) -> Result<()>,
    ) -> Result<DumpSummary> {
        let mut sum = DumpSummary::default();
        let mut failed_walk: Vec<usize> = Vec::new();
        let mut at = Some(ScanAt { node: 0, from: 0 });
        // Keys listed and not read yet: the next page is listed while they are read.
        let mut listed: Vec<Bytes> = Vec::new();
        while at.is_some() || !listed.is_empty() {
            let keys = std::mem::take(&mut listed);
            let listing = async {
                match at {
                    Some(here) => {
                        Some((here, self.scan_page(ns, pattern, here, page.max(1)).await))
                    }
                    None => None,
                }
            };
            let (next, read) = tokio::join!(listing, self.read_page(ns, keys));
            let read = read?;
            if !read.is_empty() {
                sum.keys += read.len() as u64;
                out(read)?;
            }
            let Some((here, next)) = next else { continue };
            match next {
                Ok((keys, next)) => {
                    at = next;
                    listed = self.taken_at(here.node, &failed_walk, keys);
                }
                Err(Error::Unavailable { failures }) => {
                    sum.failed.extend(failures);
                    failed_walk.push(here.node);
                    let next = here.node + 1;
                    at = (next < self.view().nodes.len()).then_some(ScanAt {
                        node: next,
                        from: 0,
                    });
                }
                Err(e) => return Err(e),
            }
        }
        if sum.failed.len() >= self.view().r {
            return Err(Error::Unavailable {
                failures: sum.failed,
            });
        }
        Ok(sum)
    }

    /// The live ones of `keys`, with value, TTL and version.
    async fn read_page(&self, ns: &str, keys: Vec<Bytes>) -> Result<Vec<Dumped>> {
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        let found = self.get_many_found(ns, &keys).await?;
        Ok(keys
            .into_iter()
            .zip(found)
            .filter_map(|(key, f)| {
                f.map(|f| Dumped {
                    key,
                    value: f.value,
                    ttl_seconds: f.ttl_seconds,
                    version: f.version,
                })
            })
            .collect())
    }

    /// The keys node `walk` (its place in id order) is the first listing replica of.
    fn taken_at(&self, walk: usize, failed: &[usize], keys: Vec<Bytes>) -> Vec<Bytes> {
        let view = self.view();
        let mut order: Vec<usize> = (0..view.nodes.len()).collect();
        order.sort_unstable_by(|a, b| view.nodes[*a].id.cmp(&view.nodes[*b].id));
        let mut place = vec![0; view.nodes.len()];
        for (w, &n) in order.iter().enumerate() {
            place[n] = w;
        }
        keys.into_iter()
            .filter(|k| {
                let walks: Vec<usize> = view.replicas(k).iter().map(|&n| place[n]).collect();
                walks.contains(&walk) && walks.iter().all(|&w| w >= walk || failed.contains(&w))
            })
            .collect()
    }
}
