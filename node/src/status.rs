//! Storage errors to gRPC statuses, in one place. Every status carries the storage
//! error's message, which names the limit or rule that was broken.

use dstash_storage::Error;
use tonic::Status;

pub fn status(e: Error) -> Status {
    let msg = e.to_string();
    match e {
        Error::InvalidNamespace { .. }
        | Error::EmptyKey { .. }
        | Error::KeyTooLarge { .. }
        | Error::ValueTooLarge { .. }
        | Error::BatchTooLarge { .. }
        | Error::VersionsMismatch { .. }
        | Error::WindowTooLarge { .. }
        | Error::InvalidRetention { .. }
        | Error::InvalidMaxBytes { .. }
        | Error::InvalidPattern { .. }
        | Error::VersionAhead { .. }
        | Error::EventTime { .. }
        | Error::InvalidRequestId { .. }
        | Error::PartitionOutOfRange { .. }
        | Error::InvalidOptions(_) => Status::invalid_argument(msg),
        // The namespace refuses writes until the node restarts; another replica may not.
        Error::Poisoned { .. } | Error::Closed => Status::unavailable(msg),
        Error::RequestReused { .. } => Status::failed_precondition(msg),
        Error::Corrupt { .. } => Status::data_loss(msg),
        Error::Io { ref source, .. } if source.raw_os_error() == Some(libc::ENOSPC) => {
            Status::resource_exhausted(msg)
        }
        _ => Status::internal(msg),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tonic::Code;

    #[test]
    fn limits_are_invalid_argument_with_the_limit_named() {
        let s = status(Error::KeyTooLarge {
            len: 70000,
            max: 65535,
        });
        assert_eq!(s.code(), Code::InvalidArgument);
        assert!(s.message().contains("65535"), "{}", s.message());
        let s = status(Error::WindowTooLarge {
            window: 61,
            retention: 60,
        });
        assert_eq!(s.code(), Code::InvalidArgument);
    }

    #[test]
    fn storage_failures_map_to_their_codes() {
        let enospc = Error::Io {
            path: "seg".into(),
            source: std::io::Error::from_raw_os_error(libc::ENOSPC),
        };
        assert_eq!(status(enospc).code(), Code::ResourceExhausted);
        let poisoned = Error::Poisoned {
            ns: "a".into(),
            cause: "EIO".into(),
        };
        assert_eq!(status(poisoned).code(), Code::Unavailable);
        let corrupt = Error::Corrupt {
            path: "seg".into(),
            offset: 1,
            reason: "crc".into(),
        };
        assert_eq!(status(corrupt).code(), Code::DataLoss);
    }
}
