//! The EVM source against a real local chain (anvil, path in `TICKGATE_TEST_ANVIL`; the tests
//! skip with a message when it is unset) and against a mock JSON-RPC node with fault switches.

mod chain;
mod mock_node;
mod support;
