//! The ceiling: the Dstash service with no store behind it. BatchPut acks each batch
//! as it arrives and BatchLookup answers every key with a 100-byte value, so a run
//! against it measures only tonic, HTTP/2, protobuf and loopback.

use std::pin::Pin;

use dstash_proto::v1::*;
use dstash_proto::{Bytes, Dstash, DstashServer};
use futures_util::{Stream, StreamExt};
use tonic::{Request, Response, Status, Streaming};

type Answers<T> = Pin<Box<dyn Stream<Item = Result<T, Status>> + Send + 'static>>;

pub struct Echo;

pub fn server() -> DstashServer<Echo> {
    DstashServer::new(Echo)
        .max_decoding_message_size(64 << 20)
        .max_encoding_message_size(64 << 20)
}

fn unimplemented<T>() -> Result<T, Status> {
    Err(Status::unimplemented(
        "the echo server answers only batch streams",
    ))
}

#[tonic::async_trait]
impl Dstash for Echo {
    async fn put(&self, _: Request<PutRequest>) -> Result<Response<PutResponse>, Status> {
        unimplemented()
    }
    async fn lookup(&self, _: Request<LookupRequest>) -> Result<Response<LookupResponse>, Status> {
        unimplemented()
    }
    async fn delete(&self, _: Request<DeleteRequest>) -> Result<Response<DeleteResponse>, Status> {
        unimplemented()
    }
    async fn merge_counters(
        &self,
        _: Request<MergeCountersRequest>,
    ) -> Result<Response<MergeCountersResponse>, Status> {
        unimplemented()
    }
    async fn set_namespace(
        &self,
        _: Request<NamespaceSettings>,
    ) -> Result<Response<NamespaceSettings>, Status> {
        unimplemented()
    }
    async fn get_layout(
        &self,
        _: Request<GetLayoutRequest>,
    ) -> Result<Response<LayoutState>, Status> {
        unimplemented()
    }
    async fn set_layout(
        &self,
        _: Request<SetLayoutRequest>,
    ) -> Result<Response<LayoutState>, Status> {
        unimplemented()
    }
    async fn change_layout(
        &self,
        _: Request<ChangeLayoutRequest>,
    ) -> Result<Response<LayoutState>, Status> {
        unimplemented()
    }

    type BatchDeleteStream = Answers<DeleteBatchAck>;
    async fn batch_delete(
        &self,
        req: Request<Streaming<DeleteBatch>>,
    ) -> Result<Response<Self::BatchDeleteStream>, Status> {
        let acks = req.into_inner().map(|b| {
            b.map(|b| DeleteBatchAck {
                batch_id: b.batch_id,
                found: vec![true; b.keys.len()],
                stale: 0,
            })
        });
        Ok(Response::new(Box::pin(acks)))
    }
    type BatchPutStream = Answers<PutBatchAck>;
    async fn batch_put(
        &self,
        req: Request<Streaming<PutBatch>>,
    ) -> Result<Response<Self::BatchPutStream>, Status> {
        let acks = req.into_inner().map(|b| {
            b.map(|b| PutBatchAck {
                batch_id: b.batch_id,
                written: b.entries.len() as u32,
                ..Default::default()
            })
        });
        Ok(Response::new(Box::pin(acks)))
    }

    type BatchLookupStream = Answers<LookupBatchResult>;
    async fn batch_lookup(
        &self,
        req: Request<Streaming<LookupBatch>>,
    ) -> Result<Response<Self::BatchLookupStream>, Status> {
        let results = req.into_inner().map(|b| b.map(echo_lookup));
        Ok(Response::new(Box::pin(results)))
    }

    async fn add(&self, _: Request<AddRequest>) -> Result<Response<CountResponse>, Status> {
        unimplemented()
    }
    async fn count(&self, _: Request<CountRequest>) -> Result<Response<CountResponse>, Status> {
        unimplemented()
    }

    type BatchAddStream = Answers<CountBatchResult>;
    async fn batch_add(
        &self,
        _: Request<Streaming<AddBatch>>,
    ) -> Result<Response<Self::BatchAddStream>, Status> {
        unimplemented()
    }

    type BatchCountStream = Answers<CountBatchResult>;
    async fn batch_count(
        &self,
        _: Request<Streaming<CountBatch>>,
    ) -> Result<Response<Self::BatchCountStream>, Status> {
        unimplemented()
    }

    type KeysStream = Answers<KeysChunk>;
    async fn keys(&self, _: Request<KeysRequest>) -> Result<Response<Self::KeysStream>, Status> {
        unimplemented()
    }

    async fn keys_page(
        &self,
        _: Request<KeysPageRequest>,
    ) -> Result<Response<KeysPageResponse>, Status> {
        unimplemented()
    }

    async fn status(&self, _: Request<StatusRequest>) -> Result<Response<StatusResponse>, Status> {
        unimplemented()
    }

    async fn digest(&self, _: Request<DigestRequest>) -> Result<Response<DigestResponse>, Status> {
        unimplemented()
    }

    type LeafEntriesStream = Answers<LeafEntriesChunk>;
    async fn leaf_entries(
        &self,
        _: Request<LeafEntriesRequest>,
    ) -> Result<Response<Self::LeafEntriesStream>, Status> {
        unimplemented()
    }

    type RepairStream = Answers<RepairProgress>;
    async fn repair(
        &self,
        _: Request<RepairRequest>,
    ) -> Result<Response<Self::RepairStream>, Status> {
        unimplemented()
    }
}

/// Every key found with a 100-byte value and a version, in the form the batch asked.
fn echo_lookup(b: LookupBatch) -> LookupBatchResult {
    const VALUE: &[u8] = &[7; 100];
    if b.flat {
        let mut f = dstash_proto::flat::FlatBuilder::with_capacity(b.keys.len());
        for _ in &b.keys {
            f.value(VALUE, 0, 1, 1);
        }
        return LookupBatchResult {
            batch_id: b.batch_id,
            flat: Some(f.finish()),
            ..Default::default()
        };
    }
    LookupBatchResult {
        batch_id: b.batch_id,
        results: b
            .keys
            .iter()
            .map(|_| LookupResponse {
                found: true,
                value: Bytes::from_static(VALUE),
                version: Some(Version { ts: 1, writer: 1 }),
                ..Default::default()
            })
            .collect(),
        flat: None,
    }
}
