//! `status_api::route` on arbitrary request heads: never panics, and every error is a 4xx
//! whose reply is one line of text.
#![no_main]

use libfuzzer_sys::fuzz_target;
use status_api::{route, RequestHead};

fuzz_target!(|data: &[u8]| {
    // Method, path, query and Content-Type, separated by NUL bytes; a missing part is None.
    let mut parts = data.splitn(4, |b| *b == 0).map(String::from_utf8_lossy);
    let method = parts.next().unwrap_or_default();
    let path = parts.next().unwrap_or_default();
    let query = parts.next();
    let content_type = parts.next();
    let head = RequestHead {
        method: &method,
        path: &path,
        query: query.as_deref(),
        content_type: content_type.as_deref(),
    };
    if let Err(e) = route(head) {
        assert!((400..500).contains(&e.status()), "{e:?}");
        let reply = e.to_reply();
        let body = std::str::from_utf8(&reply.body).expect("UTF-8 error body");
        assert!(
            body.ends_with('\n') && body.lines().count() == 1,
            "{body:?}"
        );
    }
});
