//! Rule parsing and validation tests.

use super::*;

fn price(channel: &str, price: Option<PriceField>, level: &str) -> ConditionBody {
    ConditionBody::Price {
        channel: channel.into(),
        price,
        direction: Direction::Above,
        level: level.into(),
    }
}

#[test]
fn conditions_reduce_to_a_metric_and_a_threshold() {
    let v = validate_condition(&price("book:sim:BTC-USDT", None, "70000.500")).unwrap();
    assert_eq!(v.threshold.to_string(), "70000.5");
    assert!(matches!(
        v.metric,
        Metric::Price {
            field: PriceField::Mid,
            ..
        }
    ));
    assert_eq!(v.metric.partition(), "sim");
    let v = validate_condition(&price("book:all:BTC-USDT", Some(PriceField::Ask), "1")).unwrap();
    assert_eq!(v.metric.partition(), CROSS_PARTITION);
    let down = validate_condition(&ConditionBody::Change {
        channel: "trades:sim:BTC-USDT".into(),
        window_secs: 300,
        direction: Movement::Down,
        percent: "2".into(),
    })
    .unwrap();
    assert_eq!(
        (down.direction, down.threshold.to_string()),
        (Direction::Below, "-2".into())
    );
    let d = validate_condition(&ConditionBody::Divergence {
        channels: vec!["book:sim:BTC-USDT".into(), "book:binance:BTC-USDT".into()],
        bps: "25".into(),
    })
    .unwrap();
    let ConditionBody::Divergence { channels, .. } = &d.condition else {
        unreachable!()
    };
    assert_eq!(
        channels[0], "book:binance:BTC-USDT",
        "sorted, so a/b and b/a share a metric"
    );
    let f = validate_condition(&ConditionBody::Feed {
        channel: "status:sim".into(),
        secs: 30,
    })
    .unwrap();
    assert_eq!(
        f.metric,
        Metric::VenueHealth {
            venue: Venue::new("sim").unwrap()
        }
    );
}

/// One line per bad condition: the stable code it gets.
#[test]
fn bad_conditions_get_stable_codes() {
    use protocol::ErrorCode::*;
    let cases: Vec<(ConditionBody, protocol::ErrorCode)> = vec![
        (price("book:sim", None, "1"), InvalidChannel),
        (price("orders:sim:BTC-USDT", None, "1"), InvalidChannel),
        (price("ticker:sim:BTC-USDT", None, "1"), InvalidRule),
        (
            price("trades:sim:BTC-USDT", Some(PriceField::Mid), "1"),
            InvalidRule,
        ),
        (
            price("book:sim:BTC-USDT", Some(PriceField::Last), "1"),
            InvalidRule,
        ),
        (price("book:sim:BTC-USDT", None, "0"), BadThreshold),
        (price("book:sim:BTC-USDT", None, "-5"), BadThreshold),
        (price("book:sim:BTC-USDT", None, "1e5"), BadThreshold),
        (price("book:sim:BTC-USDT", None, "abc"), BadThreshold),
        (
            price("book:sim:BTC-USDT", None, "99999999999999999"),
            BadThreshold,
        ),
        (
            ConditionBody::Change {
                channel: "trades:sim:BTC-USDT".into(),
                window_secs: 0,
                direction: Movement::Up,
                percent: "1".into(),
            },
            InvalidRule,
        ),
        (
            ConditionBody::Change {
                channel: "book:sim:BTC-USDT".into(),
                window_secs: 60,
                direction: Movement::Up,
                percent: "1".into(),
            },
            InvalidRule,
        ),
        (
            ConditionBody::VolumeSpike {
                channel: "trades:sim:BTC-USDT".into(),
                window_secs: 3600,
                trailing_windows: Some(48),
                multiple: "3".into(),
            },
            InvalidRule,
        ),
        (
            ConditionBody::VolumeSpike {
                channel: "trades:sim:BTC-USDT".into(),
                window_secs: 60,
                trailing_windows: Some(0),
                multiple: "3".into(),
            },
            InvalidRule,
        ),
        (
            ConditionBody::Spread {
                channel: "book:sim:BTC-USDT".into(),
                unit: SpreadUnit::Bps,
                above: "0".into(),
            },
            BadThreshold,
        ),
        (
            ConditionBody::Imbalance {
                channel: "book:sim:BTC-USDT".into(),
                depth: 0,
                direction: Direction::Above,
                ratio: "2".into(),
            },
            InvalidRule,
        ),
        (
            ConditionBody::Imbalance {
                channel: "book:sim:BTC-USDT".into(),
                depth: 101,
                direction: Direction::Above,
                ratio: "2".into(),
            },
            InvalidRule,
        ),
        (
            ConditionBody::Divergence {
                channels: vec!["book:sim:BTC-USDT".into()],
                bps: "5".into(),
            },
            InvalidRule,
        ),
        (
            ConditionBody::Divergence {
                channels: vec!["book:sim:BTC-USDT".into(), "book:sim:ETH-USDT".into()],
                bps: "5".into(),
            },
            InvalidRule,
        ),
        (
            ConditionBody::Divergence {
                channels: vec!["book:sim:BTC-USDT".into(), "trades:kraken:BTC-USDT".into()],
                bps: "5".into(),
            },
            InvalidRule,
        ),
        (
            ConditionBody::Divergence {
                channels: vec!["book:sim:BTC-USDT".into(), "book:all:BTC-USDT".into()],
                bps: "5".into(),
            },
            InvalidRule,
        ),
        (
            ConditionBody::Feed {
                channel: "trades:sim:BTC-USDT".into(),
                secs: 5,
            },
            InvalidRule,
        ),
        (
            ConditionBody::Feed {
                channel: "status:sim".into(),
                secs: 0,
            },
            InvalidRule,
        ),
    ];
    for (condition, code) in cases {
        let err = validate_condition(&condition).unwrap_err();
        assert_eq!(err.code(), code, "{condition:?}: {err}");
    }
}

#[test]
fn options_are_checked() {
    assert_eq!(hysteresis(Some("0.50")).unwrap().to_string(), "0.5");
    assert_eq!(
        hysteresis(Some("-1")).unwrap_err().code(),
        protocol::ErrorCode::BadThreshold
    );
    assert_eq!(
        cooldown(Some(MAX_COOLDOWN_SECS + 1)).unwrap_err().code(),
        protocol::ErrorCode::InvalidRule
    );
    assert_eq!(max_firings(Some(0)).unwrap(), None);
    assert!(max_firings(Some(MAX_FIRINGS + 1)).is_err());
    assert!(name(" ok ").is_ok() && name("").is_err() && name("a\nb").is_err());
    assert!(is_id("whe_abc123", "whe") && !is_id("whe_", "whe") && !is_id("whe_a-b", "whe"));
    assert_eq!(
        endpoint_list(&["whe_a".into(), "whe_a".into()]).unwrap(),
        ["whe_a"]
    );
    assert_eq!(
        endpoint_list(&["../x".into()]).unwrap_err().code(),
        protocol::ErrorCode::UnknownEndpoint
    );
    let trigger = Trigger {
        direction: Direction::Below,
        threshold: Decimal::from(10),
        hysteresis: Decimal::from(2),
    };
    assert!(trigger.holds(Decimal::from(10)) && !trigger.holds(Decimal::from(11)));
    assert_eq!(trigger.rearm_point(), Decimal::from(12));
}
