//! Namespace settings: convert, delegate to the store, answer the settings in force.

use dstash_proto::v1::NamespaceSettings;
use dstash_storage::SettingsChange;
use tonic::{Response, Status};

use crate::metrics::Rpc;
use crate::service::Ctx;

/// Sets what the request names (a retention of 0 and absent fields: leave as is), unless
/// this node's settings are as new as the request's stamp, and answers the settings
/// after.
pub async fn set(ctx: &Ctx, r: NamespaceSettings) -> Result<Response<NamespaceSettings>, Status> {
    let change = SettingsChange {
        retention_secs: (r.count_retention_seconds != 0).then_some(r.count_retention_seconds),
        max_bytes: r.max_bytes,
        default_ttl_secs: r.default_ttl_seconds,
        at: (r.changed_at != 0).then_some(r.changed_at),
    };
    let settings = ctx
        .run(Rpc::SetNamespace, 0, move |s| {
            let now = s.set_namespace(&r.namespace, change)?;
            Ok(NamespaceSettings {
                namespace: r.namespace,
                count_retention_seconds: now.retention_secs,
                max_bytes: Some(now.max_bytes),
                default_ttl_seconds: Some(now.default_ttl_secs),
                changed_at: now.changed_at,
            })
        })
        .await?;
    Ok(Response::new(settings))
}
