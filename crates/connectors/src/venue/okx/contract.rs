//! Swap contract sizes: OKX sends SWAP book, trade and liquidation sizes in **contracts**;
//! each contract is `ctVal` units of `ctValCcy`. For a linear swap (`BTC-USDT-SWAP`: `ctVal`
//! 0.01, `ctValCcy` BTC) that is the base asset, so `size × ctVal` is the base size, exactly.
//! An inverse swap (`BTC-USD-SWAP`: `ctValCcy` USD) counts contracts in the quote currency;
//! its base size depends on the price and is not exact, so such a swap gets no contract size
//! and its sizes are not published.

use model::{Decimal, Level};

/// What sizes of one instrument are counted in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Units {
    /// Base units already (spot).
    Base,
    /// Contracts of this many base units (a swap with a known `ctVal`).
    Contracts(Decimal),
    /// Contracts of an unknown size: nothing with a size can be published.
    Unknown,
}

impl Units {
    /// `size` in base units, exactly; an error when the product does not fit a decimal
    /// exactly (never for real sizes: 28 digits).
    pub(crate) fn to_base(self, field: &str, size: Decimal) -> Result<Decimal, String> {
        match self {
            Self::Base => Ok(size),
            Self::Contracts(ct_val) => to_base(field, size, ct_val),
            Self::Unknown => Err(format!("{field}: contract size (ctVal) unknown")),
        }
    }

    /// Converts every level's size in place.
    pub(crate) fn levels_to_base(self, field: &str, levels: &mut [Level]) -> Result<(), String> {
        if self == Self::Base {
            return Ok(());
        }
        for level in levels {
            level.size = self.to_base(field, level.size)?;
        }
        Ok(())
    }
}

/// `contracts × ct_val`, exact (refused rather than rounded), trailing zeros dropped.
pub(crate) fn to_base(field: &str, contracts: Decimal, ct_val: Decimal) -> Result<Decimal, String> {
    if contracts.scale() + ct_val.scale() > 28 {
        return Err(format!(
            "{field}: {contracts} × ctVal {ct_val} is not exact"
        ));
    }
    contracts
        .checked_mul(ct_val)
        .map(|d| d.normalize())
        .ok_or_else(|| format!("{field}: {contracts} × ctVal {ct_val} overflows"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use model::parse_decimal;

    fn d(s: &str) -> Decimal {
        parse_decimal(s).unwrap()
    }

    /// One line per case: contracts, ctVal, base size (exact, no float on the way).
    #[test]
    fn contracts_convert_to_base_units_exactly() {
        for (contracts, ct_val, base) in [
            ("415", "0.01", "4.15"),
            ("0.12060306", "0.01", "0.0012060306"),
            ("1", "0.1", "0.1"),
            ("3", "10", "30"),
            ("0", "0.01", "0"),
            ("100.00", "0.001", "0.1"),
            ("0.1", "0.3", "0.03"),
        ] {
            let got = to_base("sz", d(contracts), d(ct_val)).unwrap();
            assert_eq!(got.to_string(), base, "{contracts} × {ct_val}");
        }
        let tiny = d("0.00000000000000000001");
        assert!(
            to_base("sz", tiny, d("0.000000001"))
                .unwrap_err()
                .contains("not exact")
        );
        assert!(
            to_base("sz", Decimal::MAX, d("10"))
                .unwrap_err()
                .contains("overflows")
        );
        assert_eq!(
            Units::Base.to_base("sz", d("1.50")).unwrap().to_string(),
            "1.50"
        );
        assert!(
            Units::Unknown
                .to_base("sz", d("1"))
                .unwrap_err()
                .contains("ctVal")
        );
        let mut levels = [Level::new(d("100"), d("2")), Level::new(d("101"), d("0"))];
        Units::Contracts(d("0.01"))
            .levels_to_base("bid", &mut levels)
            .unwrap();
        assert_eq!(
            (levels[0].size.to_string(), levels[1].size.is_zero()),
            ("0.02".into(), true)
        );
    }
}
