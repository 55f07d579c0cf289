//! The config loader: a TOML document on top of the defaults, then every cross-field rule.
//!
//! Oracle: no panic; a refusal names a key; an accepted document serializes (`tickgate config check`'s
//! output) to TOML that loads back to the same config (what the loader accepts is a fixed point of its own rules).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    match server::Config::from_toml(text) {
        Ok(config) => {
            let text = config.to_toml();
            match server::Config::from_toml(&text) {
                Ok(again) => assert_eq!(again, config, "reloaded config differs:\n{text}"),
                Err(e) => panic!("accepted config does not reload ({e}):\n{text}"),
            }
        }
        Err(e) => assert!(!e.to_string().is_empty()),
    }
});
