//! Wire types and error codes of the tickgate client protocol (v1), shared by server and SDK
