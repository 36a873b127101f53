//! Slow and many clients against the real binary: hundreds of connections that send half a
//! request head and stop, or connect and say nothing, do not delay a normal client, and the
//! server drops them after the header timeout (`--header-timeout`, default 10 s).
#![allow(clippy::unwrap_used)]

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use integration_tests::TestServer;

const SLOW: usize = 400;

#[test]
fn half_sent_heads_do_not_delay_a_normal_client_and_are_dropped_after_the_timeout() {
    let server = TestServer::start(&["--header-timeout", "2"]);
    let started = Instant::now();
    let mut slow = Vec::with_capacity(SLOW);
    for i in 0..SLOW {
        let mut s = TcpStream::connect(server.addr()).unwrap();
        match i % 4 {
            // Half a request line.
            0 => s.write_all(b"GET /tiflash/sto").unwrap(),
            // A request line and half the headers.
            1 => s
                .write_all(b"GET /tiflash/store-status HTTP/1.1\r\nHost: x\r\nX-Slow: ")
                .unwrap(),
            // A POST head that never ends.
            2 => s
                .write_all(b"POST /debug/pprof/symbol HTTP/1.1\r\nContent-Length: 3\r\n")
                .unwrap(),
            // Nothing at all.
            _ => {}
        }
        slow.push(s);
    }

    // A normal client is served at once, again and again, while they hang.
    for _ in 0..10 {
        let t = Instant::now();
        let r = server.get("/tiflash/store-status");
        let took = t.elapsed();
        assert_eq!((r.status, r.text().as_str()), (200, "Running"));
        assert!(
            took < Duration::from_millis(500),
            "a normal client waited {took:?}"
        );
    }

    // Every slow connection is closed by the server: not before the timeout, not long after.
    for s in &mut slow {
        s.set_read_timeout(Some(Duration::from_secs(15))).unwrap();
        let mut buf = [0u8; 512];
        loop {
            match s.read(&mut buf) {
                Ok(0) => break,
                // hyper may answer 408 before it closes.
                Ok(_) => continue,
                Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => break,
                Err(e) => panic!("a slow client was not dropped: {e}"),
            }
        }
    }
    let all_dropped = started.elapsed();
    assert!(
        all_dropped >= Duration::from_millis(1900) && all_dropped < Duration::from_secs(10),
        "slow clients dropped after {all_dropped:?} with a 2 s header timeout"
    );
    let r = server.get("/tiflash/store-status");
    assert_eq!(r.status, 200);
}

#[test]
fn the_header_timeout_flag_is_checked() {
    let out = std::process::Command::new(integration_tests::server_binary())
        .args(["--status-addr", "127.0.0.1:0", "--header-timeout", "0"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr)
            .contains("header-timeout '0' is out of range: expected 1 to 3600 seconds"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
