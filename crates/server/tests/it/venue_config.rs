//! Configuration of real venues, replay and consolidated groups: valid files parse, bad
//! values are rejected naming their key.

use server::Config;

#[test]
fn bad_venue_replay_and_group_settings_name_their_key() {
    let cases = [
        (
            "[[venues]]\nname = \"binance\"\nsymbols = [\"BTC-USDT\"]\nws_url = \"http://x\"",
            "venues[0].ws_url",
        ),
        (
            "[[venues]]\nname = \"kraken\"\nsymbols = [\"BTC-USD\"]\n[venues.feed]\nbackoff_base_ms = 0",
            "venues[0].feed.backoff_base_ms",
        ),
        (
            "[[venues]]\nname = \"coinbase\"\nsymbols = [\"BTC-USD\"]\n[venues.feed]\nbogus = 1",
            "venues",
        ),
        ("[[venues]]\nname = \"replay\"", "venues[0].path"),
        (
            "[[venues]]\nname = \"replay\"\npath = \"c.gz\"\nspeed = \"fast\"",
            "venues[0].speed",
        ),
        (
            "[[venues]]\nname = \"replay\"\npath = \"c.gz\"\nspeed = -2.0",
            "venues[0].speed",
        ),
        (
            "[[venues]]\nname = \"sim\"\nsymbols = [\"BTC-USD\"]\npath = \"c.gz\"",
            "venues[0].path",
        ),
        (
            "[[consolidated.groups]]\nsymbol = \"BTC-USD\"\nmembers = [\"kraken:BTC-USD\"]",
            "consolidated.groups[0].members",
        ),
        (
            "[[consolidated.groups]]\nsymbol = \"BTC-USD\"\nmembers = [\"BTCUSD\"]",
            "consolidated.groups[0].members",
        ),
        ("[consolidated]\ndepth = 0", "consolidated.depth"),
    ];
    for (text, key) in cases {
        let error = Config::from_toml(text).expect_err(text);
        assert!(
            error.key.starts_with(key),
            "{text:?}: got key {:?} ({})",
            error.key,
            error.message
        );
    }
}

#[test]
fn real_venues_and_consolidated_groups_parse() {
    let text = r#"
        [[venues]]
        name = "binance"
        symbols = ["BTC-USDT"]
        ws_url = "ws://127.0.0.1:9"
        [venues.feed]
        max_streams_per_connection = 200
        [[venues]]
        name = "coinbase"
        symbols = ["BTC-USD"]
        [[consolidated.groups]]
        symbol = "BTC-USD"
        members = ["coinbase:BTC-USD", "binance:BTC-USDT"]
    "#;
    let config = Config::from_toml(text).unwrap();
    let spec = config.venues[0].venue_spec(0).unwrap();
    assert_eq!(spec.feed.max_streams_per_connection, 200);
    let groups = config.consolidated_groups().unwrap();
    let btc_usd = groups
        .iter()
        .find(|g| g.symbol.as_str() == "BTC-USD")
        .unwrap();
    assert_eq!(
        btc_usd.members.len(),
        2,
        "the explicit group merges USD and USDT"
    );
    assert!(
        groups.iter().any(|g| g.symbol.as_str() == "BTC-USDT"),
        "defaults stay"
    );
    let replay =
        Config::from_toml("[[venues]]\nname = \"replay\"\npath = \"c.gz\"\nspeed = \"max\"")
            .unwrap();
    assert_eq!(replay.venues[0].replay_speed(0).unwrap(), None);
}
