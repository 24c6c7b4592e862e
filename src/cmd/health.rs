//! `dstash health [ADDR]`: asks a node's grpc.health.v1 service whether it serves, for
//! container health checks. Exit code 0 when SERVING, 1 otherwise. Needs no token.

use std::time::Duration;

use anyhow::{Context, Result};
use clap::Args;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;
use tonic_health::pb::HealthCheckRequest;

#[derive(Debug, Args)]
pub struct HealthArgs {
    /// The node's address.
    #[arg(default_value = "127.0.0.1:5000")]
    addr: String,
}

pub async fn run(a: HealthArgs) -> Result<bool> {
    let ch = tonic::transport::Endpoint::from_shared(format!("http://{}", a.addr))
        .with_context(|| format!("address {:?}", a.addr))?
        .connect_timeout(Duration::from_secs(2))
        .timeout(Duration::from_secs(2))
        .connect()
        .await
        .with_context(|| format!("connecting to {}", a.addr))?;
    let status = HealthClient::new(ch)
        .check(HealthCheckRequest {
            service: String::new(),
        })
        .await
        .context("grpc.health.v1 Check")?
        .into_inner()
        .status();
    println!("{}", status.as_str_name());
    Ok(status == ServingStatus::Serving)
}
