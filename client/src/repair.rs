//! `repair`: asks every node to run one anti-entropy pass against the co-replicas
//! whose ids sort after its own, so that each pair of replicas is compared once, and
//! adds up what they report. The nodes compare partition digests and move only the
//! records that differ; see the node's `sync` module.

use dstash_proto::v1::{Member, RepairProgress as Progress, RepairRequest};
use futures_util::StreamExt;

use crate::client::Client;

/// What a repair pass did, summed over the nodes.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct RepairReport {
    pub nodes: u64,
    /// The nodes' counts added up; `failed` counts sessions (or whole nodes) that
    /// failed: the pass must run again.
    pub totals: Progress,
    /// One line per failure.
    pub errors: Vec<String>,
}

/// Told how far a repair pass got.
pub trait RepairProgress: Sync {
    fn update(&self, so_far: &RepairReport);
}

impl Client {
    /// One anti-entropy pass over the whole cluster; see the module docs. Never fails
    /// as a whole: a node that cannot be asked is counted in `failed`.
    pub async fn repair_all(&self, progress: &dyn RepairProgress) -> RepairReport {
        let view = self.view();
        // A layout's nodes run over their own layout: they are named nothing.
        let members: Vec<Member> = match view.layout {
            Some(_) => Vec::new(),
            None => view
                .nodes
                .iter()
                .map(|n| Member {
                    id: n.id.clone(),
                    address: n.addr.clone(),
                })
                .collect(),
        };
        let mut latest = vec![Progress::default(); view.nodes.len()];
        let mut errors = Vec::new();
        let mut streams =
            futures_util::stream::select_all(view.nodes.iter().enumerate().map(|(i, n)| {
                let mut rpc = n.rpc.clone();
                let req = RepairRequest {
                    members: members.clone(),
                    replicas: if view.layout.is_some() {
                        0
                    } else {
                        view.r as u32
                    },
                    higher_peers_only: true,
                };
                let id = n.id.clone();
                futures_util::stream::once(async move { (i, id, rpc.repair(req).await) })
                    .flat_map(|(i, id, r)| match r {
                        Ok(s) => s
                            .into_inner()
                            .map(move |p| (i, p.map_err(|e| format!("{id}: {}", e.message()))))
                            .boxed(),
                        Err(e) => futures_util::stream::once(async move {
                            (i, Err(format!("{id}: {}", e.message())))
                        })
                        .boxed(),
                    })
                    .boxed()
            }));
        while let Some((i, p)) = streams.next().await {
            match p {
                Ok(p) => {
                    if p.done && p.failed > 0 {
                        errors.push(format!("{}: {}", view.nodes[i].id, p.error));
                    }
                    latest[i] = p;
                }
                Err(e) => {
                    latest[i].failed += 1;
                    errors.push(e);
                }
            }
            progress.update(&sum(&latest, &errors));
        }
        sum(&latest, &errors)
    }
}

fn sum(latest: &[Progress], errors: &[String]) -> RepairReport {
    let mut totals = Progress::default();
    for p in latest {
        totals.add(p);
    }
    totals.error.clear();
    RepairReport {
        nodes: latest.len() as u64,
        totals,
        errors: errors.to_vec(),
    }
}
