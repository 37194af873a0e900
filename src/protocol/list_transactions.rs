//! ListTransactions (key 66): the transactional ids this coordinator knows, filtered by state,
//! producer id and (v1, KIP-994) how long the transaction has been running
//! (TransactionStateManager.listTransactionStates), as `kafka-transactions.sh list` and
//! `find-hanging` use it. A state filter naming no state is echoed in unknown_state_filters.

use kafka_protocol::messages::list_transactions_response::TransactionState as Listed;
use kafka_protocol::messages::{
    ListTransactionsRequest, ListTransactionsResponse, ProducerId, TransactionalId,
};
use kafka_protocol::protocol::StrBytes;

use super::RequestContext;
use crate::security::authorizer::AclOperation;
use crate::txn::coordinator::ListFilter;
use crate::txn::metadata::TransactionState;

pub fn handle(ctx: &RequestContext<'_>, req: ListTransactionsRequest) -> ListTransactionsResponse {
    let mut filter = ListFilter {
        producer_ids: req.producer_id_filters.iter().map(|p| p.0).collect(),
        // v0 has no duration filter; its default is -1 (none).
        min_duration_ms: req.duration_filter,
        ..ListFilter::default()
    };
    let mut unknown = Vec::new();
    for name in &req.state_filters {
        match TransactionState::from_name(name.as_str()) {
            Some(s) => filter.states.push(s),
            None => unknown.push(name.clone()),
        }
    }
    // Only unknown names: Kafka's filter set is then non-empty but matches no state.
    let listed = if !req.state_filters.is_empty() && filter.states.is_empty() {
        Vec::new()
    } else {
        ctx.broker.txns.list(&filter, ctx.broker.clock.now_ms())
    };
    // Each broker lists the transactions it coordinates; the admin client asks every broker.
    let listed = listed
        .into_iter()
        .filter(|t| super::cluster::check_txn_coordinator(ctx, &t.transactional_id).is_ok())
        // Only those the session may DESCRIBE (KafkaApis.handleListTransactionsRequest).
        .filter(|t| ctx.authorize_transactional_id(AclOperation::Describe, &t.transactional_id));
    let states = listed
        .map(|t| {
            Listed::default()
                .with_transactional_id(TransactionalId(StrBytes::from_string(t.transactional_id)))
                .with_producer_id(ProducerId(t.producer_id))
                .with_transaction_state(StrBytes::from_static_str(t.state.name()))
        })
        .collect();
    ListTransactionsResponse::default()
        .with_unknown_state_filters(unknown)
        .with_transaction_states(states)
}
