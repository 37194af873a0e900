//! DescribeTransactions (key 65): the state of transactional ids (KafkaApis.
//! handleDescribeTransactionsRequest, TransactionCoordinator.handleDescribeTransactions), as
//! `kafka-transactions.sh describe` shows it.

use std::collections::BTreeMap;

use kafka_protocol::messages::describe_transactions_response::{TopicData, TransactionState};
use kafka_protocol::messages::{
    DescribeTransactionsRequest, DescribeTransactionsResponse, ProducerId, TopicName,
};
use kafka_protocol::protocol::StrBytes;

use super::RequestContext;
use crate::security::authorizer::AclOperation;

pub fn handle(
    ctx: &RequestContext<'_>,
    req: DescribeTransactionsRequest,
) -> DescribeTransactionsResponse {
    let states = req
        .transactional_ids
        .into_iter()
        .map(|id| {
            let state = TransactionState::default().with_transactional_id(id.clone());
            // DESCRIBE on the transactional id; topics the session may not describe are left
            // out of the answer (KafkaApis.handleDescribeTransactionsRequest).
            let described = if ctx.authorize_transactional_id(AclOperation::Describe, id.as_str()) {
                super::cluster::check_txn_coordinator(ctx, id.as_str())
                    .and_then(|()| ctx.broker.txns.describe(id.as_str()))
            } else {
                Err(super::errors::TRANSACTIONAL_ID_AUTHORIZATION_FAILED)
            };
            match described {
                Err(code) => state.with_error_code(code),
                Ok(d) => {
                    let mut topics: BTreeMap<String, Vec<i32>> = BTreeMap::new();
                    let describable = d
                        .topic_partitions
                        .into_iter()
                        .filter(|(t, _)| ctx.authorize_topic(AclOperation::Describe, t));
                    for (topic, p) in describable {
                        topics.entry(topic).or_default().push(p);
                    }
                    state
                        .with_transaction_state(StrBytes::from_static_str(d.state.name()))
                        .with_transaction_timeout_ms(d.txn_timeout_ms)
                        .with_transaction_start_time_ms(d.txn_start_timestamp)
                        .with_producer_id(ProducerId(d.producer_id))
                        .with_producer_epoch(d.producer_epoch)
                        .with_topics(
                            topics
                                .into_iter()
                                .map(|(topic, partitions)| {
                                    TopicData::default()
                                        .with_topic(TopicName(StrBytes::from_string(topic)))
                                        .with_partitions(partitions)
                                })
                                .collect(),
                        )
                }
            }
        })
        .collect();
    DescribeTransactionsResponse::default().with_transaction_states(states)
}
