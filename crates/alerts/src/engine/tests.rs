//! The engine on scripted inputs: each rule kind fires exactly when it should, with exact
//! decimals; hysteresis, cool-down, expiry and max firings.

use super::*;
use crate::rule::{Trigger, validate_condition};
use book::ChecksumAlgo;
use model::{BookSnapshot, Level, Symbol, parse_decimal};
use protocol::alerts::{ConditionBody, Direction, Movement};

const S: i64 = 1_000_000;
const T0: i64 = 1_700_000_000 * S;

fn d(s: &str) -> Decimal {
    parse_decimal(s).unwrap()
}

fn rule(id: &str, condition: ConditionBody) -> Rule {
    let v = validate_condition(&condition).unwrap();
    Rule {
        id: id.into(),
        owner: "acme".into(),
        name: id.into(),
        condition: v.condition,
        metric: v.metric,
        trigger: Trigger {
            direction: v.direction,
            threshold: v.threshold,
            hysteresis: Decimal::ZERO,
        },
        cooldown_us: 0,
        expires_at: None,
        max_firings: None,
        firings: 0,
        last_fired_at: None,
        endpoints: vec![],
    }
}

fn market(venue: &str) -> Market {
    Market {
        venue: Venue::new(venue).unwrap(),
        symbol: Symbol::new("BTC-USDT").unwrap(),
    }
}

fn book(bids: &[(&str, &str)], asks: &[(&str, &str)]) -> OrderBook {
    let levels = |side: &[(&str, &str)]| {
        side.iter()
            .map(|(p, s)| Level::new(d(p), d(s)))
            .collect::<Vec<_>>()
    };
    let mut b = OrderBook::new(ChecksumAlgo::None);
    b.apply_snapshot(&BookSnapshot {
        seq: 1,
        bids: levels(bids),
        asks: levels(asks),
        ..Default::default()
    })
    .unwrap();
    b
}

/// A scripted input at second `at` after T0.
enum Step {
    Trade(&'static str, &'static str, &'static str, i64), // venue, price, size, second
    Book(&'static str, OrderBook, i64),                   // venue, book, second
    Status(&'static str, bool, i64),
    Tick(i64),
}

/// Runs the steps and returns, per step, the (rule id, value) pairs that fired.
fn run(engine: &mut Engine, steps: Vec<Step>) -> Vec<Vec<(String, String)>> {
    steps
        .into_iter()
        .map(|step| {
            let mut out = Vec::new();
            match step {
                Step::Trade(venue, price, size, at) => {
                    let tick = TradeTick {
                        price: d(price),
                        size: d(size),
                        ts: T0 + at * S,
                    };
                    engine.on_trades(&market(venue), &[tick], T0 + at * S, &mut out);
                }
                Step::Book(venue, b, at) => {
                    engine.on_book(&market(venue), &b, T0 + at * S, T0 + at * S, &mut out)
                }
                Step::Status(venue, up, at) => {
                    engine.on_status(&Venue::new(venue).unwrap(), up, T0 + at * S, &mut out)
                }
                Step::Tick(at) => engine.on_tick(T0 + at * S, &mut out),
            }
            out.into_iter()
                .filter_map(|o| match o {
                    Output::Fired(f) => Some((f.rule.id.clone(), f.value.normalize().to_string())),
                    Output::Expired(_) => None,
                })
                .collect()
        })
        .collect()
}

fn fired(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect()
}

/// One case per rule kind: the rules, the script, and what fires at each step.
#[test]
fn each_rule_kind_fires_exactly_when_it_should() {
    use Step::*;
    let price = |channel: &str, field, direction, level: &str| ConditionBody::Price {
        channel: channel.into(),
        price: field,
        direction,
        level: level.into(),
    };
    type Case = (
        &'static str,
        Vec<Rule>,
        Vec<Step>,
        Vec<Vec<(&'static str, &'static str)>>,
    );
    let cases: Vec<Case> = vec![
        (
            "last trade crosses above and below",
            vec![
                rule(
                    "up",
                    price("trades:sim:BTC-USDT", None, Direction::Above, "70000.5"),
                ),
                rule(
                    "down",
                    price("trades:sim:BTC-USDT", None, Direction::Below, "69000"),
                ),
            ],
            vec![
                Trade("sim", "70000.4", "1", 0),
                Trade("sim", "70000.50", "1", 1),
                Trade("sim", "70001", "1", 2),
                Trade("sim", "69000.01", "1", 3),
                Trade("sim", "69000.00", "1", 4),
                Trade("sim", "70000.49", "1", 5),
                Trade("sim", "70000.5", "1", 6),
            ],
            vec![
                vec![],
                vec![("up", "70000.5")],
                vec![],
                vec![],
                vec![("down", "69000")],
                vec![],
                vec![("up", "70000.5")],
            ],
        ),
        (
            "book mid, best bid and best ask, on one venue and on book:all",
            vec![
                rule(
                    "mid",
                    price("book:sim:BTC-USDT", None, Direction::Above, "100.5"),
                ),
                rule(
                    "bid",
                    price(
                        "book:sim:BTC-USDT",
                        Some(PriceField::Bid),
                        Direction::Above,
                        "100.2",
                    ),
                ),
                rule(
                    "ask",
                    price(
                        "book:sim:BTC-USDT",
                        Some(PriceField::Ask),
                        Direction::Below,
                        "100.8",
                    ),
                ),
                rule(
                    "all",
                    price("book:all:BTC-USDT", None, Direction::Below, "99"),
                ),
            ],
            vec![
                Book("sim", book(&[("100", "1")], &[("100.9", "1")]), 0),
                Book("sim", book(&[("100.2", "1")], &[("100.8", "1")]), 1),
                Book("all", book(&[("99", "1")], &[("99.5", "1")]), 2),
                Book("all", book(&[("98", "1")], &[("100", "1")]), 3),
            ],
            vec![
                vec![],
                vec![("mid", "100.5"), ("bid", "100.2"), ("ask", "100.8")],
                vec![],
                vec![("all", "99")],
            ],
        ),
        (
            "percent change over a window, up and down",
            vec![
                rule(
                    "up2",
                    ConditionBody::Change {
                        channel: "trades:sim:BTC-USDT".into(),
                        window_secs: 60,
                        direction: Movement::Up,
                        percent: "2".into(),
                    },
                ),
                rule(
                    "down1",
                    ConditionBody::Change {
                        channel: "trades:sim:BTC-USDT".into(),
                        window_secs: 60,
                        direction: Movement::Down,
                        percent: "1".into(),
                    },
                ),
            ],
            vec![
                Trade("sim", "100", "1", 0),
                Trade("sim", "103", "1", 30), // window not filled yet: nothing
                Trade("sim", "101.99", "1", 60), // +1.99 %
                Trade("sim", "102", "1", 61), // +2 % vs 100 (second 0 still the reference)
                Trade("sim", "101.97", "1", 90), // vs 103 (second 30): -1 %
            ],
            vec![
                vec![],
                vec![],
                vec![],
                vec![("up2", "2")],
                vec![("down1", "-1")],
            ],
        ),
        (
            "volume spike: current window over the trailing average",
            vec![rule(
                "spike",
                ConditionBody::VolumeSpike {
                    channel: "trades:sim:BTC-USDT".into(),
                    window_secs: 10,
                    trailing_windows: Some(3),
                    multiple: "3".into(),
                },
            )],
            vec![
                Trade("sim", "100", "1", 0),
                Trade("sim", "100", "1", 10),
                Trade("sim", "100", "1", 20),
                Tick(40),                       // 40 s observed: current 0 (places the rule)
                Trade("sim", "100", "2.9", 45), // trailing (5..35]: 2 lots, avg 2/3: 4.35
                Tick(60),                       // trailing (20..50]: 2.9; current 0: re-arms
                Trade("sim", "100", "2.9", 61), // current 2.9 vs avg 2.9/3: exactly 3
            ],
            vec![
                vec![],
                vec![],
                vec![],
                vec![],
                vec![("spike", "4.35")],
                vec![],
                vec![("spike", "3")],
            ],
        ),
        (
            "spread in quote units and in bps of the mid",
            vec![
                rule(
                    "abs",
                    ConditionBody::Spread {
                        channel: "book:sim:BTC-USDT".into(),
                        unit: SpreadUnit::Abs,
                        above: "0.5".into(),
                    },
                ),
                rule(
                    "bps",
                    ConditionBody::Spread {
                        channel: "book:sim:BTC-USDT".into(),
                        unit: SpreadUnit::Bps,
                        above: "100".into(),
                    },
                ),
            ],
            vec![
                Book("sim", book(&[("100", "1")], &[("100.4", "1")]), 0),
                Book("sim", book(&[("100", "1")], &[("100.5", "1")]), 1),
                Book("sim", book(&[("99.5", "1")], &[("100.5", "1")]), 2), // 1 / 100 = 100 bps
            ],
            vec![vec![], vec![("abs", "0.5")], vec![("bps", "100")]],
        ),
        (
            "book imbalance at depth 2 beyond a ratio, both sides",
            vec![
                rule(
                    "bids",
                    ConditionBody::Imbalance {
                        channel: "book:sim:BTC-USDT".into(),
                        depth: 2,
                        direction: Direction::Above,
                        ratio: "3".into(),
                    },
                ),
                rule(
                    "asks",
                    ConditionBody::Imbalance {
                        channel: "book:sim:BTC-USDT".into(),
                        depth: 2,
                        direction: Direction::Below,
                        ratio: "0.5".into(),
                    },
                ),
            ],
            vec![
                Book(
                    "sim",
                    book(&[("100", "1"), ("99", "1")], &[("101", "1"), ("102", "1")]),
                    0,
                ),
                // Only the top 2 count: the 3rd bid level (size 100) is ignored.
                Book(
                    "sim",
                    book(
                        &[("100", "3"), ("99", "3"), ("98", "100")],
                        &[("101", "1"), ("102", "1")],
                    ),
                    1,
                ),
                Book(
                    "sim",
                    book(&[("100", "1"), ("99", "1")], &[("101", "2"), ("102", "2")]),
                    2,
                ),
            ],
            vec![vec![], vec![("bids", "3")], vec![("asks", "0.5")]],
        ),
        (
            "cross-venue divergence of mids",
            vec![rule(
                "arb",
                ConditionBody::Divergence {
                    channels: vec!["book:sim:BTC-USDT".into(), "book:kraken:BTC-USDT".into()],
                    bps: "50".into(),
                },
            )],
            vec![
                Book("sim", book(&[("99", "1")], &[("101", "1")]), 0), // mid 100, no other venue yet
                Book("kraken", book(&[("100", "1")], &[("100.2", "1")]), 1), // 100.1: 10 bps
                Book("kraken", book(&[("100.4", "1")], &[("100.6", "1")]), 2), // 100.5: 0.5/100.25 = 49.87 bps
                Book("sim", book(&[("98.5", "1")], &[("100.5", "1")]), 3), // mid 99.5: 1/100 = 100 bps
            ],
            vec![vec![], vec![], vec![], vec![("arb", "100")]],
        ),
        (
            "feed health: a venue down, a book without updates",
            vec![
                rule(
                    "venue",
                    ConditionBody::Feed {
                        channel: "status:sim".into(),
                        secs: 5,
                    },
                ),
                rule(
                    "book",
                    ConditionBody::Feed {
                        channel: "book:sim:BTC-USDT".into(),
                        secs: 10,
                    },
                ),
            ],
            vec![
                Status("sim", true, 0),
                Book("sim", book(&[("100", "1")], &[("101", "1")]), 0),
                Status("sim", false, 1),
                Tick(5), // 4 s down
                Tick(6), // 5 s down
                Tick(7),
                Status("sim", true, 8),
                Tick(10), // the book: 10 s since its last change
                Book("sim", book(&[("100", "1")], &[("101", "1")]), 11),
                Status("sim", false, 12),
                Tick(17),
            ],
            vec![
                vec![],
                vec![],
                vec![],
                vec![],
                vec![("venue", "5")],
                vec![],
                vec![],
                vec![("book", "10")],
                vec![],
                vec![],
                vec![("venue", "5")],
            ],
        ),
    ];
    for (name, rules, steps, expected) in cases {
        let mut engine = Engine::new();
        for r in rules {
            assert!(engine.upsert(r, T0), "{name}");
        }
        let got = run(&mut engine, steps);
        let expected: Vec<_> = expected.iter().map(|step| fired(step)).collect();
        assert_eq!(got, expected, "{name}");
    }
}

#[test]
fn hysteresis_and_cooldown_stop_an_oscillating_price_from_spamming() {
    use Step::*;
    let base = rule(
        "r",
        ConditionBody::Price {
            channel: "trades:sim:BTC-USDT".into(),
            price: None,
            direction: Direction::Above,
            level: "100".into(),
        },
    );
    let oscillation = || {
        [
            "99", "100", "99.9", "100", "99.5", "100", "98", "100", "99", "100",
        ]
        .iter()
        .enumerate()
        .map(|(i, p)| Trade("sim", p, "1", i as i64 * 10))
        .collect::<Vec<_>>()
    };
    let count = |steps: &Vec<Vec<(String, String)>>| {
        steps
            .iter()
            .enumerate()
            .filter(|(_, f)| !f.is_empty())
            .map(|(i, _)| i)
            .collect::<Vec<_>>()
    };
    // No protection: every crossing fires.
    let mut e = Engine::new();
    e.upsert(base.clone(), T0);
    assert_eq!(count(&run(&mut e, oscillation())), [1, 3, 5, 7, 9]);
    // Hysteresis 1: re-arms only below 99 (98 at step 6).
    let mut e = Engine::new();
    let mut r = base.clone();
    r.trigger.hysteresis = d("1");
    e.upsert(r, T0);
    assert_eq!(count(&run(&mut e, oscillation())), [1, 7]);
    // Cool-down 35 s: steps are 10 s apart; crossings at 30 s (step 3) is suppressed, 50 s fires.
    let mut e = Engine::new();
    let mut r = base.clone();
    r.cooldown_us = 35 * S;
    e.upsert(r, T0);
    assert_eq!(count(&run(&mut e, oscillation())), [1, 5, 9]);
    assert_eq!(e.stats().suppressed, 2);
    // Max firings 2: then the rule is gone.
    let mut e = Engine::new();
    let mut r = base;
    r.max_firings = Some(2);
    e.upsert(r, T0);
    let mut out = Vec::new();
    for (i, p) in ["99", "100", "99", "100", "99", "100"].iter().enumerate() {
        let t = TradeTick {
            price: d(p),
            size: d("1"),
            ts: T0 + i as i64 * S,
        };
        e.on_trades(&market("sim"), &[t], T0 + i as i64 * S, &mut out);
    }
    let firings: Vec<(u64, bool)> = out
        .iter()
        .filter_map(|o| match o {
            Output::Fired(f) => Some((f.firing, f.completes())),
            _ => None,
        })
        .collect();
    assert_eq!(firings, [(1, false), (2, true)]);
    assert!(e.is_empty() && e.channels().is_empty());
}

#[test]
fn expiry_removes_rules_and_firing_state_survives_a_reload() {
    let mut r = rule(
        "r",
        ConditionBody::Price {
            channel: "trades:sim:BTC-USDT".into(),
            price: None,
            direction: Direction::Below,
            level: "50".into(),
        },
    );
    r.expires_at = Some(T0 + 10 * S);
    let mut e = Engine::new();
    assert!(!e.upsert(r.clone(), T0 + 10 * S), "already expired");
    assert!(e.upsert(r.clone(), T0));
    let mut out = Vec::new();
    e.on_tick(T0 + 9 * S, &mut out);
    assert!(out.is_empty());
    e.on_tick(T0 + 10 * S, &mut out);
    assert!(matches!(&out[..], [Output::Expired(x)] if x.id == "r"));
    assert!(e.is_empty());
    // A stored rule that fired within its cool-down stays quiet after a restart.
    r.expires_at = None;
    r.cooldown_us = 60 * S;
    r.firings = 3;
    r.last_fired_at = Some(T0);
    r.max_firings = Some(3);
    assert!(!e.upsert(r.clone(), T0), "max firings already reached");
    r.max_firings = Some(4);
    assert!(e.upsert(r, T0));
    let mut out = Vec::new();
    for (i, p) in ["51", "49"].iter().enumerate() {
        let t = TradeTick {
            price: d(p),
            size: d("1"),
            ts: T0 + i as i64 * S,
        };
        e.on_trades(&market("sim"), &[t], T0 + 30 * S, &mut out);
    }
    assert!(out.is_empty(), "in cool-down");
    assert_eq!(e.stats().suppressed, 1);
}

/// 100,000 rules on one price: an event that crosses none of them looks at none of them.
#[test]
fn a_hundred_thousand_rules_cost_only_what_is_crossed() {
    let mut e = Engine::new();
    let template = rule(
        "r",
        ConditionBody::Price {
            channel: "trades:sim:BTC-USDT".into(),
            price: None,
            direction: Direction::Above,
            level: "1".into(),
        },
    );
    for i in 0..100_000 {
        let mut r = template.clone();
        r.id = format!("r{i}");
        r.trigger.threshold = Decimal::new(6_000_000 + i, 2);
        r.trigger.direction = if i % 2 == 0 {
            Direction::Above
        } else {
            Direction::Below
        };
        assert!(e.upsert(r, T0));
    }
    let mut out = Vec::new();
    let trade = |e: &mut Engine, out: &mut Vec<Output>, price: &str| {
        let t = TradeTick {
            price: d(price),
            size: d("1"),
            ts: T0,
        };
        e.on_trades(&market("sim"), &[t], T0, out);
    };
    trade(&mut e, &mut out, "60500.005");
    assert!(out.is_empty(), "first value only places the rules");
    trade(&mut e, &mut out, "60500.005");
    // Levels step by 0.01 from 60000.00; even i are `above`, odd `below`. 60500.01 (i =
    // 50001) is a `below` rule already holding at the first value, 60500.00 an `above` one:
    // nothing is crossed.
    trade(&mut e, &mut out, "60500.01");
    let ids: Vec<String> = out
        .iter()
        .filter_map(|o| match o {
            Output::Fired(f) => Some(f.rule.id.clone()),
            _ => None,
        })
        .collect();
    assert_eq!(ids, Vec::<String>::new());
    trade(&mut e, &mut out, "60500.02");
    assert_eq!(out.len(), 1, "only i = 50002 (above 60500.02)");
    assert_eq!(e.stats().evaluations, 4);
}
