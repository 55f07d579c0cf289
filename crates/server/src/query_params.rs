//! [`QueryParams`]: a REST query string checked once: malformed, repeated and unknown
//! parameters are refused, so a typo never silently falls back to a default.

use crate::api_error::ApiError;
use axum::extract::Query;
use axum::extract::rejection::QueryRejection;
use model::{Symbol, Venue};
use protocol::ErrorCode;
use std::collections::HashMap;

/// The raw query of a handler (a rejection is turned into `bad_param` by [`QueryParams::new`]).
pub(crate) type Params = Result<Query<Vec<(String, String)>>, QueryRejection>;

/// Validated query parameters.
pub(crate) struct QueryParams {
    pub(crate) params: HashMap<String, String>,
}

impl QueryParams {
    pub(crate) fn new(params: Params, allowed: &[&str]) -> Result<Self, ApiError> {
        let Query(pairs) = params.map_err(|e| {
            ApiError::new(ErrorCode::BadParam, format!("malformed query string: {e}"))
        })?;
        let mut params = HashMap::with_capacity(pairs.len());
        for (key, value) in pairs {
            if params.contains_key(&key) {
                let shown: String = key.chars().take(32).collect();
                return Err(ApiError::new(
                    ErrorCode::BadParam,
                    format!("parameter {shown:?} given more than once"),
                ));
            }
            params.insert(key, value);
        }
        if let Some(unknown) = params.keys().find(|k| !allowed.contains(&k.as_str())) {
            let shown: String = unknown.chars().take(32).collect();
            return Err(ApiError::new(
                ErrorCode::BadParam,
                format!(
                    "unknown parameter {shown:?}; allowed: {}",
                    allowed.join(", ")
                ),
            ));
        }
        Ok(Self { params })
    }

    pub(crate) fn required(&self, name: &str) -> Result<&str, ApiError> {
        self.params
            .get(name)
            .map(String::as_str)
            .ok_or_else(|| ApiError::new(ErrorCode::BadParam, format!("missing parameter {name}")))
    }

    pub(crate) fn instrument(&self) -> Result<(Venue, Symbol), ApiError> {
        let venue = Venue::new(self.required("venue")?)
            .map_err(|e| ApiError::new(ErrorCode::BadParam, e.to_string()))?;
        let symbol = Symbol::new(self.required("symbol")?)
            .map_err(|e| ApiError::new(ErrorCode::BadParam, e.to_string()))?;
        Ok((venue, symbol))
    }

    pub(crate) fn number(&self, name: &str, default: usize, max: usize) -> Result<usize, ApiError> {
        let Some(text) = self.params.get(name) else {
            return Ok(default);
        };
        match text.parse::<usize>() {
            Ok(n) if (1..=max).contains(&n) => Ok(n),
            _ => Err(ApiError::new(
                ErrorCode::BadParam,
                format!("{name} must be an integer from 1 to {max}"),
            )),
        }
    }
}
