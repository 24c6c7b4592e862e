//! Request builders shared by the node's tests.
#![allow(dead_code)]

use dstash_proto::v1::{LookupRequest, PutRequest};
use dstash_proto::Bytes;

pub fn put(ns: &str, key: &[u8], value: &[u8]) -> PutRequest {
    PutRequest {
        namespace: ns.into(),
        key: Bytes::copy_from_slice(key),
        value: Bytes::copy_from_slice(value),
        ttl_seconds: 0,
    }
}

pub fn lookup(ns: &str, key: &[u8]) -> LookupRequest {
    LookupRequest {
        namespace: ns.into(),
        key: Bytes::copy_from_slice(key),
    }
}
