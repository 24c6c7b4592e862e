//! Namespace settings: convert, delegate to the store, answer the settings in force.

use dstash_proto::v1::NamespaceSettings;
use tonic::{Response, Status};

use crate::metrics::Rpc;
use crate::service::Ctx;

/// Sets what the request names (0: leave as it is) and answers the settings after.
pub async fn set(ctx: &Ctx, r: NamespaceSettings) -> Result<Response<NamespaceSettings>, Status> {
    let settings = ctx
        .run(Rpc::SetNamespace, 0, move |s| {
            if r.count_retention_seconds != 0 {
                s.set_retention(&r.namespace, r.count_retention_seconds)?;
            }
            Ok(NamespaceSettings {
                count_retention_seconds: s.count_retention(&r.namespace)?,
                namespace: r.namespace,
            })
        })
        .await?;
    Ok(Response::new(settings))
}
