//! What the EVM source reads once at start: the node's chain id, each pool's tokens and each
//! token's decimals.

use super::abi::{self, selector};
use super::dex::Pool;
use super::error::EvmError;
use super::node::Http;
use super::rpc::{parse_bytes_result, parse_quantity_result};
use super::spec::{EvmSpec, redact_url};
use model::onchain::Address;
use std::collections::HashMap;

/// What the source learned at start.
#[derive(Debug, Default)]
pub(super) struct Known {
    pub(super) pools: HashMap<Address, Pool>,
    pub(super) decimals: HashMap<Address, u8>,
}

pub(super) enum SetupError {
    /// The configuration cannot work with this node (wrong chain, a pool without the
    /// configured tokens): the venue stops.
    Terminal(String),
    Retry(EvmError),
}

impl From<EvmError> for SetupError {
    fn from(e: EvmError) -> Self {
        Self::Retry(e)
    }
}

pub(super) fn call_params(to: &Address, sig: &str) -> String {
    let sel = selector(sig);
    format!(
        r#"[{{"to":"{to}","data":"0x{:02x}{:02x}{:02x}{:02x}"}},"latest"]"#,
        sel[0], sel[1], sel[2], sel[3]
    )
}

/// `eth_call` of a no-argument view function; `Ok(None)` when the call reverts.
pub(super) async fn view(
    http: &Http,
    to: &Address,
    sig: &str,
) -> Result<Option<Vec<u8>>, EvmError> {
    match http
        .call("eth_call", &call_params(to, sig), |r| {
            parse_bytes_result("eth_call", r)
        })
        .await
    {
        Ok(bytes) => Ok(Some(bytes)),
        // Reverted (no such function): JSON-RPC error 3 or -32000 depending on the node.
        Err(EvmError::Rpc { .. }) => Ok(None),
        Err(other) => Err(other),
    }
}

pub(super) async fn decimals(http: &Http, token: &Address) -> Result<Option<u8>, EvmError> {
    Ok(view(http, token, "decimals()")
        .await?
        .and_then(|b| abi::small_uint(&b))
        .and_then(|d| u8::try_from(d).ok()))
}

pub(super) async fn setup(http: &Http, spec: &EvmSpec) -> Result<Known, SetupError> {
    let chain_id = http
        .call("eth_chainId", "[]", |r| {
            parse_quantity_result("eth_chainId", r)
        })
        .await?;
    if chain_id != spec.chain_id {
        return Err(SetupError::Terminal(format!(
            "the node at {} is on chain {chain_id}, the configuration says chain_id = {}",
            redact_url(&spec.http_url),
            spec.chain_id
        )));
    }
    let mut known = Known::default();
    for c in &spec.contracts {
        if let Some(d) = decimals(http, &c.address).await? {
            known.decimals.insert(c.address, d);
        }
    }
    for p in &spec.pools {
        let token = |sig| async move {
            view(http, &p.address, sig)
                .await
                .map(|b| b.and_then(|b| abi::address_word(&b)))
        };
        let (t0, t1) = (token("token0()").await?, token("token1()").await?);
        let base_is_token0 = match (t0, t1) {
            (Some(t0), Some(t1)) if t0 == p.base && t1 == p.quote => true,
            (Some(t0), Some(t1)) if t1 == p.base && t0 == p.quote => false,
            _ => {
                return Err(SetupError::Terminal(format!(
                    "pool {} ({}) does not trade {} against {}: token0() = {t0:?}, token1() = {t1:?}",
                    p.address, p.symbol, p.base, p.quote
                )));
            }
        };
        let mut token_decimals = [0u8; 2];
        for (slot, token) in token_decimals.iter_mut().zip([p.base, p.quote]) {
            *slot = match known.decimals.get(&token) {
                Some(d) => *d,
                None => decimals(http, &token).await?.ok_or_else(|| {
                    SetupError::Terminal(format!(
                        "token {token} of pool {} has no decimals()",
                        p.address
                    ))
                })?,
            };
            known.decimals.insert(token, *slot);
        }
        known.pools.insert(
            p.address,
            Pool {
                spec: p.clone(),
                base_is_token0,
                base_decimals: token_decimals[0],
                quote_decimals: token_decimals[1],
            },
        );
    }
    Ok(known)
}
