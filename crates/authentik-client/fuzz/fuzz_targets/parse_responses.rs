#![no_main]
//! Arbitrary server bytes, status codes and tokens: decoding never panics, and no error shows
//! the token.

use libfuzzer_sys::fuzz_target;

fuzz_target!(|input: (u16, &str, &[u8])| {
    let (status, token, body) = input;
    gitops_authentik::fuzzing::parse_response(status, body, token);
});
