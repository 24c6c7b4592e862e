//! The I/O seam: every write, allocation and sync of a store file goes through [`Io`],
//! so tests can inject short writes, ENOSPC and failed fsyncs.

use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use std::os::unix::io::AsRawFd;
use std::sync::atomic::{AtomicU64, Ordering};

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

/// Which operation a [`FaultyIo`] fault hits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// The next write writes half its buffer, and the write after it fails with ENOSPC.
    ShortWriteThenEnospc,
    /// Writes fail with ENOSPC.
    Enospc,
    /// fdatasync fails with EIO.
    SyncFails,
    /// Allocation fails with ENOSPC.
    AllocateEnospc,
}

/// [`RealIo`] with faults switched on after a number of calls. For tests.
#[derive(Debug, Default)]
pub struct FaultyIo {
    fault: parking_lot::Mutex<Option<Fault>>,
    /// Calls of the faulted kind still allowed to succeed before the fault fires.
    grace: AtomicU64,
    pub writes: AtomicU64,
    pub syncs: AtomicU64,
}

impl FaultyIo {
    pub fn new() -> Self {
        Self::default()
    }

    /// Arms `fault` after `grace` more successful calls of the kind it hits.
    pub fn arm(&self, fault: Fault, grace: u64) {
        self.grace.store(grace, Ordering::SeqCst);
        *self.fault.lock() = Some(fault);
    }

    pub fn disarm(&self) {
        *self.fault.lock() = None;
    }

    fn fires(&self, kinds: &[Fault]) -> Option<Fault> {
        let mut fault = self.fault.lock();
        let f = (*fault)?;
        if !kinds.contains(&f) {
            return None;
        }
        if self.grace.load(Ordering::SeqCst) > 0 {
            self.grace.fetch_sub(1, Ordering::SeqCst);
            return None;
        }
        if f == Fault::ShortWriteThenEnospc {
            *fault = Some(Fault::Enospc);
        }
        Some(f)
    }
}

fn enospc() -> io::Error {
    io::Error::from_raw_os_error(libc::ENOSPC)
}

impl Io for FaultyIo {
    fn write_at(&self, file: &File, buf: &[u8], offset: u64) -> io::Result<usize> {
        self.writes.fetch_add(1, Ordering::SeqCst);
        match self.fires(&[Fault::ShortWriteThenEnospc, Fault::Enospc]) {
            Some(Fault::ShortWriteThenEnospc) if buf.len() > 1 => {
                RealIo.write_at(file, &buf[..buf.len() / 2], offset)
            }
            Some(_) => Err(enospc()),
            None => RealIo.write_at(file, buf, offset),
        }
    }

    fn sync_data(&self, file: &File) -> io::Result<()> {
        self.syncs.fetch_add(1, Ordering::SeqCst);
        match self.fires(&[Fault::SyncFails]) {
            Some(_) => Err(io::Error::from_raw_os_error(libc::EIO)),
            None => RealIo.sync_data(file),
        }
    }

    fn allocate(&self, file: &File, len: u64) -> io::Result<()> {
        match self.fires(&[Fault::AllocateEnospc]) {
            Some(_) => Err(enospc()),
            None => RealIo.allocate(file, len),
        }
    }

    fn set_len(&self, file: &File, len: u64) -> io::Result<()> {
        RealIo.set_len(file, len)
    }
}
