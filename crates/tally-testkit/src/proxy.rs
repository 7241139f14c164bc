//! A TCP proxy on loopback that loses answers: each request reaches the
//! server, but the first few answers never reach the client, whose
//! connection is closed instead. What a client sees when a network drops
//! a response: it cannot tell whether the server stored its batch, so it
//! sends it again, and the server must store it once.

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

/// The proxy; it runs until the test process ends.
///
/// ```no_run
/// let proxy = tally_testkit::proxy::LosingAnswers::start("127.0.0.1:8417".parse().unwrap(), 1);
/// println!("send to {}", proxy.url);
/// ```
pub struct LosingAnswers {
    /// The URL to send to, `http://127.0.0.1:PORT`.
    pub url: String,
    lost: Arc<AtomicUsize>,
}

impl LosingAnswers {
    /// A proxy to `server` that loses the answers to the first `lose`
    /// connections' requests.
    pub fn start(server: SocketAddr, lose: usize) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind proxy");
        let url = format!("http://{}", listener.local_addr().expect("proxy addr"));
        let lost = Arc::new(AtomicUsize::new(0));
        let counter = Arc::clone(&lost);
        std::thread::spawn(move || {
            for (n, client) in listener.incoming().enumerate() {
                let Ok(client) = client else { continue };
                let counter = Arc::clone(&counter);
                std::thread::spawn(move || relay(client, server, n < lose, &counter));
            }
        });
        Self { url, lost }
    }

    /// How many answers it has lost so far.
    pub fn lost(&self) -> usize {
        self.lost.load(Ordering::SeqCst)
    }
}

fn relay(client: TcpStream, server: SocketAddr, lose: bool, lost: &AtomicUsize) {
    let Ok(upstream) = TcpStream::connect(server) else {
        return;
    };
    let (mut from_client, mut to_server) = (
        client.try_clone().expect("clone client"),
        upstream.try_clone().expect("clone upstream"),
    );
    std::thread::spawn(move || {
        let _ = std::io::copy(&mut from_client, &mut to_server);
        let _ = to_server.shutdown(Shutdown::Write);
    });
    let (mut from_server, mut to_client) = (upstream, client);
    if lose {
        // Wait for the server's answer (so the request was handled), then
        // drop it and the connection.
        let _ = from_server.set_read_timeout(Some(Duration::from_secs(30)));
        let mut first = [0; 1];
        if from_server.read(&mut first).is_ok_and(|n| n > 0) {
            lost.fetch_add(1, Ordering::SeqCst);
        }
        let _ = to_client.shutdown(Shutdown::Both);
        return;
    }
    let _ = std::io::copy(&mut from_server, &mut to_client);
    let _ = to_client.flush();
    let _ = to_client.shutdown(Shutdown::Write);
}
