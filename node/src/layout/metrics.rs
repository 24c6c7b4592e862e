//! Layout and handoff metrics, registered with the node's other metrics.

use dstash_cluster::{Layout, Stage};
use dstash_proto::v1::RepairProgress;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

#[derive(Debug, Default)]
pub struct LayoutMetrics {
    epoch: Gauge,
    stage: Gauge,
    partitions: Gauge,
    partitions_done: Gauge,
    pushed: Counter,
    pulled: Counter,
    bytes_sent: Counter,
    failures: Counter,
    forgotten: Counter,
    counter_keys: Counter,
}

impl LayoutMetrics {
    pub fn register(&self, r: &mut Registry) {
        let gauges: [(&str, &str, &Gauge); 4] = [
            ("dstash_layout_epoch", "The layout epoch this node holds (0: none)", &self.epoch),
            (
                "dstash_layout_stage",
                "The stage of the layout held: 0 stable, 1 write-both, 2 streaming, 3 read-new, 4 cleanup",
                &self.stage,
            ),
            (
                "dstash_handoff_partitions",
                "Partitions this node sends in the current streaming stage",
                &self.partitions,
            ),
            (
                "dstash_handoff_partitions_done",
                "Of those, the partitions sent",
                &self.partitions_done,
            ),
        ];
        for (name, help, g) in gauges {
            r.register(name, help, g.clone());
        }
        let counters: [(&str, &str, &Counter); 6] = [
            (
                "dstash_handoff_pushed",
                "Records this node's handoff wrote to new owners",
                &self.pushed,
            ),
            (
                "dstash_handoff_pulled",
                "Records this node's handoff took from new owners that held them newer",
                &self.pulled,
            ),
            (
                "dstash_handoff_bytes_sent",
                "Bytes this node's handoff sent",
                &self.bytes_sent,
            ),
            (
                "dstash_handoff_failures",
                "Handoff groups (and cleanups) that failed and were tried again",
                &self.failures,
            ),
            (
                "dstash_cleanup_forgotten",
                "Records this node forgot because it no longer owns their partitions",
                &self.forgotten,
            ),
            (
                "dstash_handoff_counter_keys",
                "Keys whose live expiring counts this node's handoff sent",
                &self.counter_keys,
            ),
        ];
        for (name, help, c) in counters {
            r.register(name, help, c.clone());
        }
    }

    /// The layout held now.
    pub fn held(&self, l: Option<&Layout>) {
        self.epoch.set(l.map_or(0, |l| l.epoch as i64));
        self.stage
            .set(l.map_or(Stage::Stable, |l| l.stage).code() as i64);
    }

    /// Where the handoff stands.
    pub fn progress(&self, p: &RepairProgress) {
        self.partitions.set(p.partitions_total as i64);
        self.partitions_done.set(p.partitions_done as i64);
    }

    /// What one session of the handoff moved.
    pub fn moved(&self, t: &RepairProgress) {
        self.pushed.inc_by(t.pushed);
        self.pulled.inc_by(t.pulled);
        self.bytes_sent.inc_by(t.bytes_sent);
    }

    pub fn counters_sent(&self, keys: u64) {
        self.counter_keys.inc_by(keys);
    }

    pub fn forgot(&self, records: u64) {
        self.forgotten.inc_by(records);
    }

    pub fn failed(&self) {
        self.failures.inc();
    }
}
