//! A real local EVM chain for tests: anvil (the binary named by `TICKGATE_TEST_ANVIL`),
//! started on a free port and killed on drop, with JSON-RPC helpers to deploy the test
//! contracts of `test_data/evm/` and send transactions from anvil's first account. Not a
//! mock: the chain is real; it lives here so every crate's tests share it. Helpers panic on
//! failure (they are test steps).

use crate::venue::evm::abi::selector;
use model::onchain::{Address, Hash32};
use serde_json::{Value, json};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// anvil's first default account (unlocked: `eth_sendTransaction` works without keys).
pub const ACCOUNT: &str = "0xf39fd6e51aad88f6f4ce6ab8827279cfffb92266";
pub const CHAIN_ID: u64 = 31337;

/// The anvil binary, from `TICKGATE_TEST_ANVIL`; `None` (with a plain message) when unset.
pub fn binary(test: &str) -> Option<PathBuf> {
    match std::env::var_os("TICKGATE_TEST_ANVIL") {
        Some(path) if !path.is_empty() => Some(PathBuf::from(path)),
        _ => {
            eprintln!(
                "SKIPPED {test}: TICKGATE_TEST_ANVIL is not set (path to an anvil binary; .ci/evm.sh installs one)"
            );
            None
        }
    }
}

#[derive(Debug)]
pub struct Anvil {
    child: Child,
    pub port: u16,
    client: reqwest::Client,
    id: AtomicU64,
}

impl Drop for Anvil {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}

impl Anvil {
    /// Starts anvil (automining: one block per transaction) and waits until it answers.
    pub async fn start(binary: &PathBuf) -> Self {
        crate::conn::ws::ensure_crypto_provider();
        let port = free_port();
        let child = Command::new(binary)
            .args([
                "--host",
                "127.0.0.1",
                "--port",
                &port.to_string(),
                "--quiet",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("anvil starts");
        let anvil = Self {
            child,
            port,
            client: reqwest::Client::new(),
            id: AtomicU64::new(1),
        };
        for _ in 0..200 {
            if anvil.try_rpc("eth_chainId", json!([])).await.is_ok() {
                return anvil;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("anvil did not answer on port {port}");
    }

    pub fn http_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    pub fn ws_url(&self) -> String {
        format!("ws://127.0.0.1:{}", self.port)
    }

    pub async fn try_rpc(&self, method: &str, params: Value) -> Result<Value, String> {
        let id = self.id.fetch_add(1, Ordering::Relaxed);
        let body = json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params});
        let response = self
            .client
            .post(self.http_url())
            .header("content-type", "application/json")
            .body(body.to_string())
            .send()
            .await
            .map_err(|e| e.to_string())?;
        let value: Value = serde_json::from_str(&response.text().await.map_err(|e| e.to_string())?)
            .map_err(|e| e.to_string())?;
        match value.get("error") {
            Some(error) => Err(format!("{method}: {error}")),
            None => Ok(value["result"].clone()),
        }
    }

    pub async fn rpc(&self, method: &str, params: Value) -> Value {
        self.try_rpc(method, params).await.unwrap()
    }

    /// Sends a transaction from [`ACCOUNT`]; anvil mines it into its own block. Returns
    /// `(tx hash, block number)`.
    pub async fn send(&self, to: Option<&Address>, data: &str) -> (Hash32, u64) {
        let mut tx = json!({"from": ACCOUNT, "data": data, "gas": "0x1000000"});
        if let Some(to) = to {
            tx["to"] = json!(to.to_string());
        }
        let hash = self.rpc("eth_sendTransaction", json!([tx])).await;
        let receipt = self.receipt(&hash).await;
        assert_eq!(receipt["status"], "0x1", "transaction failed: {receipt}");
        let block = u64::from_str_radix(
            receipt["blockNumber"]
                .as_str()
                .unwrap()
                .trim_start_matches("0x"),
            16,
        )
        .unwrap();
        (Hash32::parse(hash.as_str().unwrap()).unwrap(), block)
    }

    /// The receipt of a mined transaction (anvil mines on arrival; the receipt may lag).
    async fn receipt(&self, hash: &Value) -> Value {
        for _ in 0..100 {
            let receipt = self.rpc("eth_getTransactionReceipt", json!([hash])).await;
            if !receipt.is_null() {
                return receipt;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        panic!("no receipt for {hash}");
    }

    /// Deploys a contract from `test_data/evm/{name}.bin` with ABI-encoded constructor words.
    pub async fn deploy(&self, name: &str, args: &[[u8; 32]]) -> Address {
        let path = format!("{}/test_data/evm/{name}.bin", env!("CARGO_MANIFEST_DIR"));
        let mut data = format!("0x{}", std::fs::read_to_string(path).unwrap().trim());
        for word in args {
            data.push_str(&hex(word));
        }
        let tx = json!({"from": ACCOUNT, "data": data, "gas": "0x1000000"});
        let hash = self.rpc("eth_sendTransaction", json!([tx])).await;
        let receipt = self.receipt(&hash).await;
        assert_eq!(receipt["status"], "0x1", "deploy failed: {receipt}");
        Address::parse(receipt["contractAddress"].as_str().unwrap()).unwrap()
    }

    /// Calls `signature` on `to` with ABI words as arguments, in a transaction.
    pub async fn transact(
        &self,
        to: &Address,
        signature: &str,
        args: &[[u8; 32]],
    ) -> (Hash32, u64) {
        let sel = selector(signature);
        let mut data = format!("0x{}", hex(&sel));
        for word in args {
            data.push_str(&hex(word));
        }
        self.send(Some(to), &data).await
    }

    pub async fn mine(&self, blocks: u64) {
        self.rpc("anvil_mine", json!([format!("0x{blocks:x}")]))
            .await;
    }

    pub async fn block_hash(&self, number: u64) -> Hash32 {
        let b = self
            .rpc(
                "eth_getBlockByNumber",
                json!([format!("0x{number:x}"), false]),
            )
            .await;
        Hash32::parse(b["hash"].as_str().unwrap()).unwrap()
    }
}

pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// ABI words.
pub fn uint(value: u128) -> [u8; 32] {
    let mut w = [0u8; 32];
    w[16..].copy_from_slice(&value.to_be_bytes());
    w
}

pub fn int(value: i128) -> [u8; 32] {
    let fill = if value < 0 { 0xff } else { 0 };
    let mut w = [fill; 32];
    w[16..].copy_from_slice(&value.to_be_bytes());
    w
}

pub fn addr(a: &Address) -> [u8; 32] {
    let mut w = [0u8; 32];
    w[12..].copy_from_slice(&a.0);
    w
}
