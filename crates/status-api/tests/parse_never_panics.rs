//! Property test: the route parser answers every input with a route or an error, never a panic,
//! and every error carries a status code in the 4xx range with a one-line sentence.

use proptest::prelude::*;
use status_api::{parse_symbol_addresses, route, RequestHead};

fn method() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("GET".to_string()),
        Just("HEAD".to_string()),
        Just("POST".to_string()),
        "[A-Z]{0,8}"
    ]
}

fn path() -> impl Strategy<Value = String> {
    let known = prop_oneof![
        Just("/debug/pprof/"),
        Just("/tiflash/"),
        Just("/tifash/"),
        Just("/tiflash/sync-status/"),
        Just("/tiflash/sync-status/keyspace/"),
        Just("/debug/pprof/heap_file/"),
        Just(""),
    ];
    (known, ".{0,40}").prop_map(|(p, rest)| format!("{p}{rest}"))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(4000))]

    #[test]
    fn route_never_panics(m in method(), p in path(), q in proptest::option::of(".{0,60}"), ct in proptest::option::of(".{0,30}")) {
        let head = RequestHead { method: &m, path: &p, query: q.as_deref(), content_type: ct.as_deref() };
        if let Err(e) = route(head) {
            let reply = e.to_reply();
            prop_assert!((400..500).contains(&reply.status), "{} for {m} {p}", reply.status);
            let body = String::from_utf8(reply.body.to_vec()).expect("utf-8 body");
            prop_assert_eq!(body.matches('\n').count(), 1);
        }
    }

    #[test]
    fn symbol_parser_never_panics(body in proptest::collection::vec(any::<u8>(), 0..200)) {
        let _ = parse_symbol_addresses(&body);
    }

    #[test]
    fn symbol_parser_round_trips(addrs in proptest::collection::vec(any::<u64>(), 0..50)) {
        let body = addrs.iter().map(|a| format!("{a:#x}")).collect::<Vec<_>>().join("+");
        prop_assert_eq!(parse_symbol_addresses(body.as_bytes()).unwrap(), addrs);
    }
}
