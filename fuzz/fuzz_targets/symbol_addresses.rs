//! `status_api::parse_symbol_addresses` on arbitrary bodies: never panics; what it accepts
//! round-trips, and every error is a 400 with a one-line sentence.
#![no_main]

use libfuzzer_sys::fuzz_target;
use status_api::parse_symbol_addresses;

fuzz_target!(|data: &[u8]| {
    match parse_symbol_addresses(data) {
        Ok(addrs) => {
            // Written back in the canonical form, the addresses parse to the same list.
            let canonical: Vec<String> = addrs.iter().map(|a| format!("{a:#x}")).collect();
            let again = parse_symbol_addresses(canonical.join("+").as_bytes())
                .expect("canonical form parses");
            assert_eq!(again, addrs);
        }
        Err(e) => {
            assert_eq!(e.status(), 400, "{e:?}");
            assert_eq!(e.to_string().lines().count(), 1, "{e}");
        }
    }
});
