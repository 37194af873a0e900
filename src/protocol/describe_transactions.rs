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

pub fn handle(
    ctx: &RequestContext<'_>,
    req: DescribeTransactionsRequest,
) -> DescribeTransactionsResponse {
    let states = req
        .transactional_ids
        .into_iter()
        .map(|id| {
            let state = TransactionState::default().with_transactional_id(id.clone());
            let described = super::cluster::check_txn_coordinator(ctx, id.as_str())
                .and_then(|()| ctx.broker.txns.describe(id.as_str()));
            match described {
                Err(code) => state.with_error_code(code),
                Ok(d) => {
                    let mut topics: BTreeMap<String, Vec<i32>> = BTreeMap::new();
                    for (topic, p) in d.topic_partitions {
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
