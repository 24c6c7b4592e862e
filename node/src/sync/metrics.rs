//! Anti-entropy counters, registered with the node's other metrics.

use prometheus_client::metrics::counter::Counter;
use prometheus_client::registry::Registry;

use super::Tally;

#[derive(Debug, Default)]
pub struct SyncMetrics {
    pub passes: Counter,
    partitions: Counter,
    partitions_differing: Counter,
    keys_compared: Counter,
    pushed: Counter,
    pulled: Counter,
    bytes_sent: Counter,
    bytes_received: Counter,
    failures: Counter,
}

impl SyncMetrics {
    pub fn register(&self, r: &mut Registry) {
        let all: [(&str, &str, &Counter); 9] = [
            (
                "dstash_antientropy_passes",
                "Anti-entropy passes run",
                &self.passes,
            ),
            (
                "dstash_antientropy_partitions",
                "Partitions compared with a peer",
                &self.partitions,
            ),
            (
                "dstash_antientropy_partitions_differing",
                "Partitions whose digest differed from the peer's",
                &self.partitions_differing,
            ),
            (
                "dstash_antientropy_keys_compared",
                "Keys listed and compared in differing leaves",
                &self.keys_compared,
            ),
            (
                "dstash_antientropy_pushed",
                "Records written to a peer that lacked them or held older",
                &self.pushed,
            ),
            (
                "dstash_antientropy_pulled",
                "Records taken from a peer that held newer",
                &self.pulled,
            ),
            (
                "dstash_antientropy_sent_bytes",
                "Bytes of anti-entropy requests sent",
                &self.bytes_sent,
            ),
            (
                "dstash_antientropy_received_bytes",
                "Bytes of anti-entropy answers received",
                &self.bytes_received,
            ),
            (
                "dstash_antientropy_failures",
                "Sessions with a peer that failed",
                &self.failures,
            ),
        ];
        for (name, help, c) in all {
            r.register(name, help, c.clone());
        }
    }

    pub fn record(&self, t: &Tally) {
        self.partitions.inc_by(t.partitions_done);
        self.partitions_differing.inc_by(t.partitions_differing);
        self.keys_compared.inc_by(t.keys_compared);
        self.pushed.inc_by(t.pushed);
        self.pulled.inc_by(t.pulled);
        self.bytes_sent.inc_by(t.bytes_sent);
        self.bytes_received.inc_by(t.bytes_received);
        self.failures.inc_by(t.failed);
    }
}
