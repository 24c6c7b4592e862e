//! An [`Io`] that injects faults: for tests, behind the `test-util` feature.

use std::fs::File;
use std::io;
use std::sync::atomic::{AtomicU64, Ordering};

use super::{Io, RealIo};

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
