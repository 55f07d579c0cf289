//! Rules: what a condition watches ([`Metric`]), when it fires ([`Trigger`]) and how often it
//! may ([`Rule`]: hysteresis, cool-down, expiry, maximum firings), validated from the wire
//! types with stable error codes.
//!
//! Every condition reduces to one number per market event (a price, a percent change, a
//! volume multiple, a spread, a depth ratio, a divergence in bps, seconds unhealthy) and a
//! threshold on one side of it, which is what lets the engine index rules by threshold.

use crate::error::AlertError;
use model::{Channel, ChannelKind, Decimal, Symbol, Venue, parse_decimal};
use protocol::alerts::{ConditionBody, Direction, Movement, PriceField, SpreadUnit};
use serde::{Deserialize, Serialize};
use std::fmt;
use store::alerts::RuleRecord;

/// Longest rule name.
pub const MAX_NAME: usize = 100;
/// Most endpoints one rule delivers to.
pub const MAX_RULE_ENDPOINTS: usize = 8;
/// Longest `change` window, and longest span a `volume_spike` rule looks back over.
pub const MAX_WINDOW_SECS: u64 = 86_400;
/// Most trailing windows of a `volume_spike` rule.
pub const MAX_TRAILING_WINDOWS: u32 = 96;
/// Default trailing windows of a `volume_spike` rule.
pub const DEFAULT_TRAILING_WINDOWS: u32 = 12;
/// Deepest `imbalance` depth.
pub const MAX_DEPTH: u32 = 100;
/// Longest `feed` duration and cool-down.
pub const MAX_FEED_SECS: u64 = 86_400;
pub const MAX_COOLDOWN_SECS: u64 = 30 * 86_400;
pub const MAX_FIRINGS: u64 = 1_000_000;
/// Partition of rules reading several venues or the consolidated `all` venue.
pub const CROSS_PARTITION: &str = "cross";

/// One venue's instrument.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Market {
    pub venue: Venue,
    pub symbol: Symbol,
}

impl fmt::Display for Market {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.venue, self.symbol)
    }
}

/// The number a condition watches. Rules with equal metrics share its computation and its
/// threshold index.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Metric {
    /// Trade prices (`Last`) or the book's mid, best bid or best ask.
    Price {
        market: Market,
        field: PriceField,
    },
    /// Percent change of the last trade price over `window_secs`.
    Change {
        market: Market,
        window_secs: u32,
    },
    /// Volume in the last `window_secs` over the average of the `trailing` windows before.
    Volume {
        market: Market,
        window_secs: u32,
        trailing: u32,
    },
    Spread {
        market: Market,
        unit: SpreadUnit,
    },
    /// Bid size over ask size, top `depth` levels each.
    Imbalance {
        market: Market,
        depth: u32,
    },
    /// |a − b| / ((a + b) / 2) in bps, of mid prices (`field` = `Mid`) or last trades
    /// (`Last`); `a` < `b`.
    Divergence {
        a: Market,
        b: Market,
        field: PriceField,
    },
    /// Seconds since the venue was last connected (0 while it is).
    VenueHealth {
        venue: Venue,
    },
    /// Seconds since the book last changed while live (rebuilding counts as not changing).
    BookHealth {
        market: Market,
    },
}

impl Metric {
    /// The evaluator that owns rules on this metric: the venue, or [`CROSS_PARTITION`].
    pub fn partition(&self) -> String {
        let single = |venue: &Venue| {
            if venue.as_str() == Venue::ALL {
                CROSS_PARTITION.to_string()
            } else {
                venue.as_str().to_string()
            }
        };
        match self {
            Self::Price { market, .. }
            | Self::Change { market, .. }
            | Self::Volume { market, .. }
            | Self::Spread { market, .. }
            | Self::Imbalance { market, .. }
            | Self::BookHealth { market } => single(&market.venue),
            Self::VenueHealth { venue } => single(venue),
            Self::Divergence { .. } => CROSS_PARTITION.to_string(),
        }
    }

    /// The hub channels whose data the metric reads.
    pub fn channels(&self) -> Vec<Channel> {
        let book = |m: &Market| Channel::new(ChannelKind::Book, m.venue.clone(), m.symbol.clone());
        let trades =
            |m: &Market| Channel::new(ChannelKind::Trades, m.venue.clone(), m.symbol.clone());
        match self {
            Self::Price {
                market,
                field: PriceField::Last,
            }
            | Self::Change { market, .. }
            | Self::Volume { market, .. } => vec![trades(market)],
            Self::Price { market, .. }
            | Self::Spread { market, .. }
            | Self::Imbalance { market, .. }
            | Self::BookHealth { market } => vec![book(market)],
            Self::Divergence { a, b, field } => match field {
                PriceField::Last => vec![trades(a), trades(b)],
                _ => vec![book(a), book(b)],
            },
            Self::VenueHealth { venue } => vec![Channel::status(venue.clone())],
        }
    }
}

/// When a rule fires, on its metric's value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Trigger {
    pub direction: Direction,
    pub threshold: Decimal,
    /// The value must come back past `threshold` by more than this before the rule re-arms.
    pub hysteresis: Decimal,
}

impl Trigger {
    /// Whether `value` is on the firing side.
    pub fn holds(&self, value: Decimal) -> bool {
        match self.direction {
            Direction::Above => value >= self.threshold,
            Direction::Below => value <= self.threshold,
        }
    }

    /// The value past which a fired (or already-true) rule re-arms: it re-arms once the value
    /// is strictly beyond it.
    pub fn rearm_point(&self) -> Decimal {
        match self.direction {
            Direction::Above => self.threshold - self.hysteresis,
            Direction::Below => self.threshold + self.hysteresis,
        }
    }
}

/// A rule's options, stored beside its condition in the record's `spec`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Spec {
    pub condition: ConditionBody,
    pub hysteresis: Decimal,
    pub cooldown_secs: u64,
}

/// A validated rule, as the engine evaluates it.
#[derive(Debug, Clone, PartialEq)]
pub struct Rule {
    pub id: String,
    pub owner: String,
    pub name: String,
    /// The condition in canonical form (defaults filled in, decimals normalized).
    pub condition: ConditionBody,
    pub metric: Metric,
    pub trigger: Trigger,
    pub cooldown_us: i64,
    pub expires_at: Option<i64>,
    pub max_firings: Option<u64>,
    /// Firings so far (from the store when loaded).
    pub firings: u64,
    pub last_fired_at: Option<i64>,
    pub endpoints: Vec<String>,
}

impl Rule {
    /// Rebuilds a stored rule (its spec was validated when it was created).
    pub fn from_record(record: &RuleRecord) -> Result<Self, AlertError> {
        let spec: Spec = serde_json::from_value(record.spec.clone())
            .map_err(|e| AlertError::InvalidRule(format!("stored rule {}: {e}", record.id)))?;
        let validated = validate_condition(&spec.condition)?;
        Ok(Self {
            id: record.id.clone(),
            owner: record.owner.clone(),
            name: record.name.clone(),
            condition: validated.condition,
            metric: validated.metric,
            trigger: Trigger {
                direction: validated.direction,
                threshold: validated.threshold,
                hysteresis: spec.hysteresis,
            },
            cooldown_us: i64::try_from(spec.cooldown_secs.min(MAX_COOLDOWN_SECS))
                .unwrap_or(0)
                .saturating_mul(1_000_000),
            expires_at: record.expires_at,
            max_firings: record.max_firings,
            firings: record.firings,
            last_fired_at: record.last_fired_at,
            endpoints: record.endpoints.clone(),
        })
    }
}

/// A condition checked and reduced to a metric and a threshold.
#[derive(Debug, Clone, PartialEq)]
pub struct Validated {
    pub condition: ConditionBody,
    pub metric: Metric,
    pub direction: Direction,
    pub threshold: Decimal,
}

fn invalid(message: impl Into<String>) -> AlertError {
    AlertError::InvalidRule(message.into())
}

/// Parses a threshold-like decimal string exactly: `> 0` (`positive`) or `>= 0`, at most
/// `max`.
pub fn decimal(
    field: &str,
    text: &str,
    positive: bool,
    max: Decimal,
) -> Result<Decimal, AlertError> {
    let value = parse_decimal(text).map_err(|e| {
        AlertError::BadThreshold(format!(
            "{field}: {e}; send an exact decimal string like \"70000.50\""
        ))
    })?;
    let low_ok = if positive {
        value > Decimal::ZERO
    } else {
        value >= Decimal::ZERO
    };
    if !low_ok || value > max {
        let low = if positive {
            "greater than 0"
        } else {
            "0 or more"
        };
        return Err(AlertError::BadThreshold(format!(
            "{field} must be {low} and at most {max}"
        )));
    }
    Ok(value.normalize())
}

fn channel(text: &str) -> Result<Channel, AlertError> {
    text.parse::<Channel>()
        .map_err(|e| AlertError::InvalidChannel(format!("{}: {e}", e.code())))
}

fn market(
    channel: &Channel,
    wanted: &[ChannelKind],
    condition: &str,
) -> Result<Market, AlertError> {
    let names: Vec<String> = wanted.iter().map(ToString::to_string).collect();
    match &channel.symbol {
        Some(symbol) if wanted.contains(&channel.kind) => Ok(Market {
            venue: channel.venue.clone(),
            symbol: symbol.clone(),
        }),
        _ => Err(invalid(format!(
            "a {condition} condition reads a {} channel, not {channel}",
            names.join(" or ")
        ))),
    }
}

fn bounded(field: &str, value: u64, low: u64, high: u64) -> Result<u32, AlertError> {
    if !(low..=high).contains(&value) {
        return Err(invalid(format!("{field} must be from {low} to {high}")));
    }
    u32::try_from(value).map_err(|_| invalid(format!("{field} is too large")))
}

/// Checks a condition (channel shapes, ranges, exact decimals) and reduces it to a metric and
/// a threshold. Whether the channels are served is the caller's check (it knows the hub).
pub fn validate_condition(body: &ConditionBody) -> Result<Validated, AlertError> {
    // No price, spread or ratio reaches this; the bound only keeps arithmetic in range.
    let huge = Decimal::from(1_000_000_000_000_i64);
    let ok = |condition, metric, direction, threshold| {
        Ok(Validated {
            condition,
            metric,
            direction,
            threshold,
        })
    };
    match body {
        ConditionBody::Price {
            channel: name,
            price,
            direction,
            level,
        } => {
            let ch = channel(name)?;
            let m = market(&ch, &[ChannelKind::Trades, ChannelKind::Book], "price")?;
            let field = match (ch.kind, price) {
                (ChannelKind::Trades, None | Some(PriceField::Last)) => PriceField::Last,
                (ChannelKind::Trades, Some(other)) => {
                    return Err(invalid(format!(
                        "a trades channel has last-trade prices only, not {other:?}"
                    )));
                }
                (_, Some(PriceField::Last)) => {
                    return Err(invalid("price \"last\" reads a trades channel, not a book"));
                }
                (_, field) => field.unwrap_or(PriceField::Mid),
            };
            let level = decimal("level", level, true, huge)?;
            ok(
                ConditionBody::Price {
                    channel: ch.to_string(),
                    price: Some(field),
                    direction: *direction,
                    level: level.to_string(),
                },
                Metric::Price { market: m, field },
                *direction,
                level,
            )
        }
        ConditionBody::Change {
            channel: name,
            window_secs,
            direction,
            percent,
        } => {
            let ch = channel(name)?;
            let m = market(&ch, &[ChannelKind::Trades], "change")?;
            let window = bounded("window_secs", *window_secs, 1, MAX_WINDOW_SECS)?;
            let pct = decimal("percent", percent, true, Decimal::from(1000))?;
            let (dir, threshold) = match direction {
                Movement::Up => (Direction::Above, pct),
                Movement::Down => (Direction::Below, -pct),
            };
            ok(
                ConditionBody::Change {
                    channel: ch.to_string(),
                    window_secs: u64::from(window),
                    direction: *direction,
                    percent: pct.to_string(),
                },
                Metric::Change {
                    market: m,
                    window_secs: window,
                },
                dir,
                threshold,
            )
        }
        ConditionBody::VolumeSpike {
            channel: name,
            window_secs,
            trailing_windows,
            multiple,
        } => {
            let ch = channel(name)?;
            let m = market(&ch, &[ChannelKind::Trades], "volume_spike")?;
            let window = bounded("window_secs", *window_secs, 1, MAX_WINDOW_SECS)?;
            let trailing = trailing_windows.unwrap_or(DEFAULT_TRAILING_WINDOWS);
            bounded(
                "trailing_windows",
                u64::from(trailing),
                1,
                u64::from(MAX_TRAILING_WINDOWS),
            )?;
            if u64::from(window) * (u64::from(trailing) + 1) > MAX_WINDOW_SECS {
                return Err(invalid(format!(
                    "window_secs × (trailing_windows + 1) must be at most {MAX_WINDOW_SECS}"
                )));
            }
            let multiple = decimal("multiple", multiple, true, Decimal::from(1_000_000))?;
            ok(
                ConditionBody::VolumeSpike {
                    channel: ch.to_string(),
                    window_secs: u64::from(window),
                    trailing_windows: Some(trailing),
                    multiple: multiple.to_string(),
                },
                Metric::Volume {
                    market: m,
                    window_secs: window,
                    trailing,
                },
                Direction::Above,
                multiple,
            )
        }
        ConditionBody::Spread {
            channel: name,
            unit,
            above,
        } => {
            let ch = channel(name)?;
            let m = market(&ch, &[ChannelKind::Book], "spread")?;
            let above = decimal("above", above, true, huge)?;
            ok(
                ConditionBody::Spread {
                    channel: ch.to_string(),
                    unit: *unit,
                    above: above.to_string(),
                },
                Metric::Spread {
                    market: m,
                    unit: *unit,
                },
                Direction::Above,
                above,
            )
        }
        ConditionBody::Imbalance {
            channel: name,
            depth,
            direction,
            ratio,
        } => {
            let ch = channel(name)?;
            let m = market(&ch, &[ChannelKind::Book], "imbalance")?;
            let depth = bounded("depth", u64::from(*depth), 1, u64::from(MAX_DEPTH))?;
            let ratio = decimal("ratio", ratio, true, Decimal::from(1_000_000))?;
            ok(
                ConditionBody::Imbalance {
                    channel: ch.to_string(),
                    depth,
                    direction: *direction,
                    ratio: ratio.to_string(),
                },
                Metric::Imbalance { market: m, depth },
                *direction,
                ratio,
            )
        }
        ConditionBody::Divergence { channels, bps } => {
            let [a, b] = channels.as_slice() else {
                return Err(invalid("a divergence condition names exactly two channels"));
            };
            let (a, b) = (channel(a)?, channel(b)?);
            let kinds = [ChannelKind::Book, ChannelKind::Trades];
            let (ma, mb) = (
                market(&a, &kinds, "divergence")?,
                market(&b, &kinds, "divergence")?,
            );
            if a.kind != b.kind {
                return Err(invalid(
                    "both divergence channels must be book or both trades channels",
                ));
            }
            if ma.venue == mb.venue || [&ma, &mb].iter().any(|m| m.venue.as_str() == Venue::ALL) {
                return Err(invalid(
                    "divergence compares two different venues (not the consolidated `all`)",
                ));
            }
            let field = if a.kind == ChannelKind::Trades {
                PriceField::Last
            } else {
                PriceField::Mid
            };
            let bps = decimal("bps", bps, true, Decimal::from(1_000_000))?;
            let (ma, mb, a, b) = if ma <= mb {
                (ma, mb, a, b)
            } else {
                (mb, ma, b, a)
            };
            ok(
                ConditionBody::Divergence {
                    channels: vec![a.to_string(), b.to_string()],
                    bps: bps.to_string(),
                },
                Metric::Divergence {
                    a: ma,
                    b: mb,
                    field,
                },
                Direction::Above,
                bps,
            )
        }
        ConditionBody::Feed {
            channel: name,
            secs,
        } => {
            let ch = channel(name)?;
            let secs = bounded("secs", *secs, 1, MAX_FEED_SECS)?;
            let metric = match ch.kind {
                ChannelKind::Status => Metric::VenueHealth {
                    venue: ch.venue.clone(),
                },
                ChannelKind::Book => Metric::BookHealth {
                    market: market(&ch, &[ChannelKind::Book], "feed")?,
                },
                _ => {
                    return Err(invalid(format!(
                        "a feed condition reads a status:{{venue}} or book channel, not {ch}"
                    )));
                }
            };
            ok(
                ConditionBody::Feed {
                    channel: ch.to_string(),
                    secs: u64::from(secs),
                },
                metric,
                Direction::Above,
                Decimal::from(secs),
            )
        }
    }
}

/// Checks a rule name.
pub fn name(text: &str) -> Result<String, AlertError> {
    let text = text.trim();
    if text.is_empty() || text.chars().count() > MAX_NAME {
        return Err(invalid(format!("name must be 1 to {MAX_NAME} characters")));
    }
    if text.chars().any(char::is_control) {
        return Err(invalid("name must not contain control characters"));
    }
    Ok(text.to_string())
}

/// Checks the options shared by creation and updates.
pub fn hysteresis(text: Option<&str>) -> Result<Decimal, AlertError> {
    match text {
        Some(t) => decimal("hysteresis", t, false, Decimal::from(1_000_000_000_000_i64)),
        None => Ok(Decimal::ZERO),
    }
}

pub fn cooldown(secs: Option<u64>) -> Result<u64, AlertError> {
    let secs = secs.unwrap_or(0);
    if secs > MAX_COOLDOWN_SECS {
        return Err(invalid(format!(
            "cooldown_secs must be at most {MAX_COOLDOWN_SECS}"
        )));
    }
    Ok(secs)
}

pub fn max_firings(n: Option<u64>) -> Result<Option<u64>, AlertError> {
    match n {
        Some(0) | None => Ok(None),
        Some(n) if n <= MAX_FIRINGS => Ok(Some(n)),
        Some(_) => Err(invalid(format!(
            "max_firings must be from 1 to {MAX_FIRINGS}"
        ))),
    }
}

/// An id of the form `{prefix}_` + 1 to 60 ASCII letters and digits.
pub fn is_id(text: &str, prefix: &str) -> bool {
    text.strip_prefix(prefix)
        .and_then(|rest| rest.strip_prefix('_'))
        .is_some_and(|rest| {
            (1..=60).contains(&rest.len()) && rest.bytes().all(|b| b.is_ascii_alphanumeric())
        })
}

pub fn endpoint_list(ids: &[String]) -> Result<Vec<String>, AlertError> {
    if ids.len() > MAX_RULE_ENDPOINTS {
        return Err(invalid(format!(
            "a rule delivers to at most {MAX_RULE_ENDPOINTS} endpoints"
        )));
    }
    let mut out: Vec<String> = Vec::with_capacity(ids.len());
    for id in ids {
        if !is_id(id, "whe") {
            let shown: String = id.chars().take(64).collect();
            return Err(AlertError::UnknownEndpoint(shown));
        }
        if !out.contains(id) {
            out.push(id.clone());
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests;
