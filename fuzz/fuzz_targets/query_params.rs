//! `status_api::QueryParams::parse` on arbitrary query strings: never panics; a parsed query
//! has each name once, and every error is a 400 with a one-line sentence.
#![no_main]

use libfuzzer_sys::fuzz_target;
use status_api::QueryParams;

fuzz_target!(|data: &[u8]| {
    let Ok(raw) = std::str::from_utf8(data) else {
        return;
    };
    match QueryParams::parse(Some(raw)) {
        Ok(q) => {
            let names: Vec<&str> = q.iter().map(|(k, _)| k).collect();
            for (i, name) in names.iter().enumerate() {
                assert!(!name.is_empty());
                assert!(!names[..i].contains(name), "{name:?} twice");
            }
            // The typed accessors never panic either.
            let _ = q.int_in("seconds", 1, 3600, 10);
            let _ = q.bool("jeprof", false);
            let _ = q.only(&["seconds"]);
        }
        Err(e) => {
            assert_eq!(e.status(), 400, "{e:?}");
            assert_eq!(e.to_string().lines().count(), 1, "{e}");
        }
    }
});
