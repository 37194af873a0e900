//! Producer ids and idempotence state (transactions come later).

pub mod producer_ids;
pub mod producer_state;
