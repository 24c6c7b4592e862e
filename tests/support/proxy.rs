//! A fault-injecting TCP proxy for tests: forwards to one target, and on command
//! delays every chunk, drops all traffic (connections stay open, nothing arrives), or
//! cuts every connection and refuses new ones.

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicU64, AtomicU8, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    Pass,
    /// Every chunk, each way, waits this long before it is forwarded.
    Delay(Duration),
    /// Bytes are read and thrown away, each way.
    Drop,
    /// Open connections are shut down and new ones closed at once.
    Cut,
}

#[derive(Default)]
struct Shared {
    mode: AtomicU8,
    delay_ms: AtomicU64,
    open: Mutex<Vec<TcpStream>>,
}

pub struct Proxy {
    pub addr: SocketAddr,
    shared: Arc<Shared>,
}

impl Proxy {
    pub fn start(target: SocketAddr) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let shared = Arc::new(Shared::default());
        let s = shared.clone();
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                let Ok(client) = conn else { continue };
                if s.fault() == Fault::Cut {
                    continue; // dropped: closed at once
                }
                let Ok(server) = TcpStream::connect(target) else {
                    continue;
                };
                let _ = (client.set_nodelay(true), server.set_nodelay(true));
                {
                    let mut open = s.open.lock().unwrap();
                    open.push(client.try_clone().unwrap());
                    open.push(server.try_clone().unwrap());
                }
                pump(
                    s.clone(),
                    client.try_clone().unwrap(),
                    server.try_clone().unwrap(),
                );
                pump(s.clone(), server, client);
            }
        });
        Proxy { addr, shared }
    }

    pub fn set(&self, fault: Fault) {
        let (mode, ms) = match fault {
            Fault::Pass => (0, 0),
            Fault::Delay(d) => (1, d.as_millis() as u64),
            Fault::Drop => (2, 0),
            Fault::Cut => (3, 0),
        };
        self.shared.delay_ms.store(ms, Ordering::SeqCst);
        self.shared.mode.store(mode, Ordering::SeqCst);
        if fault == Fault::Cut {
            for c in self.shared.open.lock().unwrap().drain(..) {
                let _ = c.shutdown(Shutdown::Both);
            }
        }
    }
}

impl Shared {
    fn fault(&self) -> Fault {
        match self.mode.load(Ordering::SeqCst) {
            1 => Fault::Delay(Duration::from_millis(self.delay_ms.load(Ordering::SeqCst))),
            2 => Fault::Drop,
            3 => Fault::Cut,
            _ => Fault::Pass,
        }
    }
}

fn pump(shared: Arc<Shared>, mut from: TcpStream, mut to: TcpStream) {
    std::thread::spawn(move || {
        let mut buf = vec![0u8; 64 << 10];
        loop {
            let n = match from.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            };
            match shared.fault() {
                Fault::Pass => {}
                Fault::Delay(d) => std::thread::sleep(d),
                Fault::Drop => continue,
                Fault::Cut => break,
            }
            if to.write_all(&buf[..n]).is_err() {
                break;
            }
        }
        let _ = to.shutdown(Shutdown::Write);
    });
}
