//! Request builders and test certificates shared by the node's tests.
#![allow(
    dead_code,
    reason = "each test binary uses only some of these helpers, so `expect` would be unfulfilled in the others"
)]

use dstash_proto::v1::{LookupRequest, PutRequest};
use dstash_proto::Bytes;

pub fn put(ns: &str, key: &[u8], value: &[u8]) -> PutRequest {
    PutRequest {
        namespace: ns.into(),
        key: Bytes::copy_from_slice(key),
        value: Bytes::copy_from_slice(value),
        ttl_seconds: 0,
        ..Default::default()
    }
}

pub fn lookup(ns: &str, key: &[u8]) -> LookupRequest {
    LookupRequest {
        namespace: ns.into(),
        key: Bytes::copy_from_slice(key),
    }
}

/// A CA, and certificates it signs.
pub struct Pki {
    ca: rcgen::CertifiedIssuer<'static, rcgen::KeyPair>,
}

impl Pki {
    pub fn new(name: &str) -> Self {
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, name);
        let ca = rcgen::CertifiedIssuer::self_signed(params, rcgen::KeyPair::generate().unwrap())
            .unwrap();
        Self { ca }
    }

    /// (certificate PEM, key PEM) for `name`.
    pub fn issue(&self, name: &str) -> (String, String) {
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = rcgen::CertificateParams::new(vec![name.to_string()])
            .unwrap()
            .signed_by(&key, &self.ca)
            .unwrap();
        (cert.pem(), key.serialize_pem())
    }

    pub fn ca_pem(&self) -> String {
        self.ca.pem()
    }
}
