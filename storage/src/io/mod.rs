//! The I/O seam: every write, allocation and sync of a store file goes through [`Io`],
//! so tests can inject short writes, ENOSPC and failed fsyncs ([`FaultyIo`], with the
//! `test-util` feature).

#[cfg(any(test, feature = "test-util"))]
mod faulty;
#[cfg(any(test, feature = "test-util"))]
pub use faulty::{Fault, FaultyIo};

use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use std::os::unix::io::AsRawFd;

pub trait Io: Send + Sync + std::fmt::Debug {
    /// Writes some prefix of `buf` at `offset`; may be short.
    fn write_at(&self, file: &File, buf: &[u8], offset: u64) -> io::Result<usize>;
    /// fdatasync: data and the metadata needed to read it back.
    fn sync_data(&self, file: &File) -> io::Result<()>;
    /// Reserves disk blocks for `[0, len)`, so that a full disk is found before a write.
    fn allocate(&self, file: &File, len: u64) -> io::Result<()>;
    fn set_len(&self, file: &File, len: u64) -> io::Result<()>;
}

/// The operating system.
#[derive(Debug, Default, Clone, Copy)]
pub struct RealIo;

impl Io for RealIo {
    fn write_at(&self, file: &File, buf: &[u8], offset: u64) -> io::Result<usize> {
        file.write_at(buf, offset)
    }

    fn sync_data(&self, file: &File) -> io::Result<()> {
        file.sync_data()
    }

    fn allocate(&self, file: &File, len: u64) -> io::Result<()> {
        let len =
            libc::off_t::try_from(len).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
        // SAFETY: plain syscall on an owned, open descriptor.
        let rc = unsafe { libc::posix_fallocate(file.as_raw_fd(), 0, len) };
        if rc == 0 {
            Ok(())
        } else {
            Err(io::Error::from_raw_os_error(rc))
        }
    }

    fn set_len(&self, file: &File, len: u64) -> io::Result<()> {
        file.set_len(len)
    }
}

/// Writes all of `buf`, retrying short writes; a short write followed by an error is an error.
pub fn write_all_at(io: &dyn Io, file: &File, mut buf: &[u8], mut offset: u64) -> io::Result<()> {
    while !buf.is_empty() {
        match io.write_at(file, buf, offset) {
            Ok(0) => return Err(io::Error::from(io::ErrorKind::WriteZero)),
            Ok(n) => {
                buf = &buf[n..];
                offset += n as u64;
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}
