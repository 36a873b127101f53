//! Bad input never breaks the server: a table of hostile requests over every route, sent over
//! raw TCP to the real binary. Each gets a 4xx whose body is one `text/plain` sentence (HEAD:
//! the status alone), none gets a 5xx, and after each one the server answers normally.
#![allow(clippy::unwrap_used)]

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::time::Duration;

use integration_tests::{parse_response, TestServer, GET_ROUTES};

/// One hostile request.
struct Case {
    what: String,
    raw: Vec<u8>,
    /// Stop writing after `raw` (a body shorter than announced).
    half_close: bool,
    /// The exact status, when it matters; otherwise any 4xx.
    status: Option<u16>,
}

fn case(what: impl Into<String>, raw: impl Into<Vec<u8>>, status: Option<u16>) -> Case {
    Case {
        what: what.into(),
        raw: raw.into(),
        half_close: false,
        status,
    }
}

/// `METHOD target` with `Connection: close`, extra header lines and a body.
fn request(method: &str, target: &str, headers: &[&str], body: &[u8]) -> Vec<u8> {
    let mut raw = format!("{method} {target} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n");
    for h in headers {
        raw.push_str(h);
        raw.push_str("\r\n");
    }
    raw.push_str("\r\n");
    let mut raw = raw.into_bytes();
    raw.extend_from_slice(body);
    raw
}

fn get(target: &str) -> Vec<u8> {
    request("GET", target, &[], b"")
}

/// A deterministic byte generator (xorshift64*), for the random symbol bodies.
struct Bytes(u64);

impl Bytes {
    fn fill(&mut self, n: usize) -> Vec<u8> {
        (0..n)
            .map(|_| {
                self.0 ^= self.0 >> 12;
                self.0 ^= self.0 << 25;
                self.0 ^= self.0 >> 27;
                (self.0.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 56) as u8
            })
            .collect()
    }
}

fn cases() -> Vec<Case> {
    let mut cases = Vec::new();

    // Integer parameters: non-numbers, negatives, zero, overflow, empty, fractions, other
    // notations, percent-encoded and NUL bytes, non-UTF-8, very long values.
    let long_digits = "9".repeat(60_000);
    let bad_ints = [
        "abc",
        "-1",
        "0",
        "18446744073709551616",
        "99999999999999999999999999",
        "",
        "1.5",
        "0x10",
        "1e3",
        "%00",
        "1%00",
        "%zz",
        "%",
        "%C3%28",
        "%EF%BC%91",
        "+",
        "%201",
        "1%0A",
        "NaN",
        "--1",
        &long_digits,
    ];
    for (route, name, too_big) in [
        ("/debug/pprof/profile", "seconds", "3601"),
        ("/debug/pprof/profile", "frequency", "1001"),
        ("/debug/pprof/heap_activate", "interval", "86401"),
    ] {
        for value in bad_ints.iter().copied().chain([too_big]) {
            let shown = &value[..value.len().min(24)];
            cases.push(case(
                format!("{route} {name}={shown}"),
                get(&format!("{route}?{name}={value}")),
                Some(400),
            ));
        }
        // Repeated, and a percent-encoded name that decodes to the same name.
        cases.push(case(
            format!("{route} repeated {name}"),
            get(&format!("{route}?{name}=1&{name}=2")),
            Some(400),
        ));
        cases.push(case(
            format!("{route} repeated encoded {name}"),
            get(&format!(
                "{route}?{name}=1&%{:02X}{}=1",
                name.as_bytes()[0],
                &name[1..]
            )),
            Some(400),
        ));
    }
    // The protobuf Content-Type does not make a bad parameter good.
    cases.push(case(
        "profile bad seconds with protobuf content type",
        request(
            "GET",
            "/debug/pprof/profile?seconds=abc",
            &["Content-Type: application/protobuf"],
            b"",
        ),
        Some(400),
    ));

    // Enumerated parameters.
    for target in [
        "/debug/pprof/heap?jeprof=maybe",
        "/debug/pprof/heap?jeprof=",
        "/debug/pprof/heap?text=pdf",
        "/debug/pprof/heap?text=%00",
        "/debug/pprof/heap?format=json",
        "/debug/pprof/heap?jeprof=true&format=protobuf",
        "/debug/pprof/heap?text=svg&text=raw",
        "/debug/pprof/heap?format=protobuf&format=protobuf",
        "/debug/pprof/memory_status?format=xml",
        "/debug/pprof/memory_status?format=%FF",
        "/debug/pprof/memory_status?format=json&format=text",
        "/debug/pprof/memory_status?=json",
    ] {
        cases.push(case(target, get(target), Some(400)));
    }

    // Unknown parameters on every route, and an empty name.
    for route in GET_ROUTES {
        let sep = if route.contains('?') { '&' } else { '?' };
        cases.push(case(
            format!("{route} unknown parameter"),
            get(&format!("{route}{sep}bogus=1")),
            Some(400),
        ));
        cases.push(case(
            format!("{route} NUL parameter"),
            get(&format!("{route}{sep}%00=%00")),
            Some(400),
        ));
    }

    // Ids in the path.
    let long_id = "9".repeat(5000);
    for tail in [
        "abc",
        "-1",
        "9223372036854775808",
        "",
        "1.0",
        "%31",
        "1%00",
        "%00",
        "0x1",
        "%EF%BC%91",
        "1/2",
        "1/",
        "keyspace/-1/table/1",
        "keyspace/4294967296/table/1",
        "keyspace/1/table/",
        "keyspace//table/1",
        "keyspace/1/table/1/..",
        "..",
        "../1",
        "./1",
        &long_id,
    ] {
        for prefix in ["/tiflash", "/tifash"] {
            let target = format!("{prefix}/sync-status/{tail}");
            cases.push(case(
                format!("{prefix}/sync-status/{}", &tail[..tail.len().min(24)]),
                get(&target),
                Some(400),
            ));
        }
    }

    // Names and `..` in paths: never a file outside the dump directory, always a 404.
    for target in [
        "/debug/pprof/heap_file/../../../etc/passwd",
        "/debug/pprof/heap_file/..%2F..%2F..%2Fetc%2Fpasswd",
        "/debug/pprof/heap_file/%2e%2e/%2e%2e/etc/passwd",
        "/debug/pprof/heap_file//etc/passwd",
        "/debug/pprof/heap_file/000001.heap%00",
        "/debug/pprof/heap_file/000001.heap/..",
        "/debug/pprof/heap_file/",
        "/debug/pprof/heap_file/.heap",
        "/debug/pprof/heap_file/-1.heap",
        "/debug/pprof/heap_file/999999999999999999999.heap",
        "/debug/pprof/../pprof/heap",
        "/tiflash/../tiflash/store-status",
        "/tiflash/./store-status",
        "/tiflash/store%2Dstatus",
        "/debug/pprof/heap%5Flist",
        "/tiflash/store-status%00",
        "/tiflash//store-status",
        "/TIFLASH/store-status",
        "/",
        "*",
        "/tiflash/",
        "/debug/pprof/",
        "/debug/pprof",
    ] {
        cases.push(case(target, get(target), Some(404)));
    }
    let long_path = format!("/tiflash/{}", "a".repeat(8000));
    cases.push(case("8 KB path", get(&long_path), Some(404)));
    let huge_path = format!("/tiflash/{}", "a".repeat(70_000));
    cases.push(case("70 KB path", get(&huge_path), Some(414)));
    let many_headers: Vec<String> = (0..150).map(|i| format!("X-H{i}: v")).collect();
    let many_headers: Vec<&str> = many_headers.iter().map(String::as_str).collect();
    cases.push(case(
        "150 headers",
        request("GET", "/tiflash/store-status", &many_headers, b""),
        Some(431),
    ));

    // Raw bytes that are not HTTP.
    for (what, raw) in [
        ("NUL in the path", &b"GET /tiflash/store-status\0 HTTP/1.1\r\nHost: x\r\n\r\n"[..]),
        ("NUL in a header", b"GET /tiflash/store-status HTTP/1.1\r\nHost: x\0y\r\n\r\n"),
        ("space in the path", b"GET /tiflash/store status HTTP/1.1\r\nHost: x\r\n\r\n"),
        ("raw UTF-8 in the path", "GET /tiflash/störe HTTP/1.1\r\nHost: x\r\n\r\n".as_bytes()),
        ("raw byte 0xff in the path", b"GET /tiflash/\xff HTTP/1.1\r\nHost: x\r\n\r\n"),
        ("bad version", b"GET /tiflash/store-status HTTP/7.0\r\nHost: x\r\n\r\n"),
        ("no version", b"GET /tiflash/store-status\r\n\r\n"),
        ("binary garbage", b"\x16\x03\x01\x00\x05hello\r\n\r\n"),
        ("bad header line", b"GET /tiflash/store-status HTTP/1.1\r\nno colon here\r\n\r\n"),
        ("negative Content-Length", b"POST /debug/pprof/symbol HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\n"),
        ("overflowing Content-Length", b"POST /debug/pprof/symbol HTTP/1.1\r\nHost: x\r\nContent-Length: 99999999999999999999999\r\n\r\n"),
        ("two Content-Lengths", b"POST /debug/pprof/symbol HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab"),
        ("bad chunk size", b"POST /debug/pprof/symbol HTTP/1.1\r\nHost: x\r\nConnection: close\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n0x1\r\n0\r\n\r\n"),
    ] {
        cases.push(case(what, raw, None));
    }

    // Wrong methods on every route (the symbol route takes POST, so not that one there).
    for route in GET_ROUTES {
        for method in [
            "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "TRACE", "get", "FOO",
        ] {
            if method == "POST" && route.starts_with("/debug/pprof/symbol") {
                continue;
            }
            cases.push(case(
                format!("{method} {route}"),
                request(method, route, &["Content-Length: 0"], b""),
                Some(405),
            ));
        }
    }
    cases.push(case(
        "CONNECT",
        request("CONNECT", "127.0.0.1:20292", &[], b""),
        None,
    ));

    // Bodies on GET and HEAD, on every route.
    for route in GET_ROUTES {
        for method in ["GET", "HEAD"] {
            cases.push(case(
                format!("{method} {route} with a body"),
                request(method, route, &["Content-Length: 5"], b"hello"),
                Some(400),
            ));
        }
        cases.push(case(
            format!("GET {route} with a chunked body"),
            request(
                "GET",
                route,
                &["Transfer-Encoding: chunked"],
                b"5\r\nhello\r\n0\r\n\r\n",
            ),
            Some(400),
        ));
    }

    // Huge and lying Content-Length on the route that takes a body.
    for (len, status) in [
        ("16777217", 413),
        ("1000000000", 413),
        ("18446744073709551613", 413),
        // hyper keeps the two largest values for itself and refuses them while parsing.
        ("18446744073709551615", 431),
    ] {
        cases.push(case(
            format!("Content-Length {len}"),
            request(
                "POST",
                "/debug/pprof/symbol",
                &[&format!("Content-Length: {len}")],
                b"",
            ),
            Some(status),
        ));
    }
    cases.push(Case {
        what: "Content-Length 100 with 10 bytes".into(),
        raw: request(
            "POST",
            "/debug/pprof/symbol",
            &["Content-Length: 100"],
            b"0x1+0x2+0x",
        ),
        half_close: true,
        status: Some(400),
    });

    // The symbol body and query: random bytes, malformed tokens.
    let mut rng = Bytes(0x5eed_1234_abcd_0001);
    for n in [1, 7, 64, 1000, 4096, 100_000] {
        let mut body = rng.fill(n);
        // Make sure it is not UTF-8 text, whatever the generator gave.
        body.push(0xff);
        cases.push(case(
            format!("{n} random bytes as symbols"),
            request(
                "POST",
                "/debug/pprof/symbol",
                &[&format!("Content-Length: {}", body.len())],
                &body,
            ),
            Some(400),
        ));
    }
    for body in [
        &b"0xZZ"[..],
        b"0x1+0xZZ+0x2",
        b"0x",
        b"0x1 0x2",
        b"0x10000000000000000",
        b"fffffffffffffffff",
        b"\0",
        b"0x1\x000x2",
        b"-0x1",
        b"0x1,0x2",
    ] {
        cases.push(case(
            format!("symbols {:?}", String::from_utf8_lossy(body)),
            request(
                "POST",
                "/debug/pprof/symbol",
                &[&format!("Content-Length: {}", body.len())],
                body,
            ),
            Some(400),
        ));
    }
    for query in ["0xZZ", "%ff", "0x1%00", "0x1+0xg", "a=b"] {
        let target = format!("/debug/pprof/symbol?{query}");
        cases.push(case(target.clone(), get(&target), Some(400)));
    }
    cases
}

/// Sends one case on a fresh connection and reads the reply to its end.
fn send(addr: SocketAddr, case: &Case) -> Vec<u8> {
    let stream = TcpStream::connect_timeout(&addr, Duration::from_secs(5)).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    let mut writer = stream.try_clone().unwrap();
    let raw = case.raw.clone();
    let half_close = case.half_close;
    // Write while reading: the server may answer before it has read everything.
    let write = std::thread::spawn(move || {
        let _ = writer.write_all(&raw);
        if half_close {
            let _ = writer.shutdown(Shutdown::Write);
        }
    });
    let mut reply = Vec::new();
    let mut reader = stream;
    let mut buf = [0u8; 16 * 1024];
    loop {
        match reader.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => reply.extend_from_slice(&buf[..n]),
            Err(e) => {
                assert!(!reply.is_empty(), "{}: no reply ({e})", case.what);
                break;
            }
        }
    }
    let _ = write.join();
    reply
}

#[test]
fn no_hostile_request_gets_a_5xx_or_breaks_the_server() {
    let server = TestServer::start(&[]);
    let cases = cases();
    assert!(cases.len() > 300, "{} cases", cases.len());
    let mut failures = Vec::new();
    for case in &cases {
        let raw = send(server.addr(), case);
        let head_only = case.raw.starts_with(b"HEAD ");
        let reply = parse_response(&raw, head_only);
        let text = reply.text();
        let content_type = reply.header("content-type").unwrap_or("");
        let status_ok = match case.status {
            Some(s) => reply.status == s,
            None => (400..500).contains(&reply.status),
        };
        let sentence_ok = head_only
            || (content_type == "text/plain; charset=utf-8"
                && text.ends_with('\n')
                && text.lines().count() == 1
                && text.trim().len() >= 10
                && text.len() < 1024);
        if !(status_ok && sentence_ok) {
            failures.push(format!(
                "{}: status {} (wanted {:?}), content-type {content_type:?}, body {:?}",
                case.what,
                reply.status,
                case.status,
                &text[..text.len().min(300)]
            ));
        }
        assert!(
            reply.status < 500,
            "{}: a 5xx: {} {text}",
            case.what,
            reply.status
        );
        // And the server still answers normally.
        let ok = server.get("/tiflash/store-status");
        assert_eq!(
            (ok.status, ok.text().as_str()),
            (200, "Running"),
            "after {}",
            case.what
        );
    }
    assert!(
        failures.is_empty(),
        "{} of {} cases failed:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
    // Nothing that was sent started work: no heap activation is running.
    let list = server.get("/debug/pprof/heap_list");
    assert_eq!((list.status, list.text().as_str()), (200, ""));
    let log = server.stderr();
    assert!(!log.contains("panicked"), "{log}");
}
