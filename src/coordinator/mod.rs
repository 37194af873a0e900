//! What every coordinator of this broker shares (Kafka's coordinator-common): the runtime that
//! runs a coordinator's operations against its internal topic (`runtime`). The group coordinator
//! runs on it today; the transaction coordinator is meant to.

pub mod runtime;
