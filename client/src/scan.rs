//! A listing in pages that resumes across calls (the Redis front end's SCAN): node by
//! node in id order, each node's keys a page at a time from a position it gave.

use dstash_proto::v1::KeysPageRequest;
use dstash_proto::Bytes;

use crate::client::{failure, rejected, Client};
use crate::error::{Error, Result};

/// Where a paged listing goes on: the `node`-th node in id order, from `from`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ScanAt {
    pub node: usize,
    pub from: u64,
}

impl Client {
    /// One page of the keys matching `pattern`, from `at`, about `count` of them (a
    /// page may hold more, fewer or none), and where the next page starts (None: every
    /// node was listed). A key held by R nodes is listed by each: a full walk names
    /// every key present throughout at least once, and may name some more than once.
    pub async fn scan_page(
        &self,
        ns: &str,
        pattern: &str,
        at: ScanAt,
        count: u32,
    ) -> Result<(Vec<Bytes>, Option<ScanAt>)> {
        let view = self.view();
        let mut ids: Vec<&str> = view.nodes.iter().map(|n| n.id.as_str()).collect();
        ids.sort_unstable();
        let Some(id) = ids.get(at.node) else {
            return Ok((Vec::new(), None));
        };
        let node = view
            .nodes
            .iter()
            .find(|n| n.id == *id)
            .ok_or_else(|| Error::Config(format!("node {id} left the view")))?;
        let req = KeysPageRequest {
            namespace: ns.into(),
            pattern: pattern.into(),
            from: at.from,
            count,
        };
        let page = self
            .call(node, true, |mut rpc| {
                let req = req.clone();
                async move { rpc.keys_page(req).await }
            })
            .await
            .map_err(|s| {
                rejected(node, &s).unwrap_or_else(|| Error::Unavailable {
                    failures: vec![failure(node, &s)],
                })
            })?;
        let next = match (page.more, at.node + 1 < ids.len()) {
            (true, _) => Some(ScanAt {
                node: at.node,
                from: page.next,
            }),
            (false, true) => Some(ScanAt {
                node: at.node + 1,
                from: 0,
            }),
            (false, false) => None,
        };
        Ok((page.keys, next))
    }
}
