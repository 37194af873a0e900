//! Metadata (key 3): the live brokers and the requested topics with their partitions' replicas,
//! ISR and leaders, all from the metadata image, auto-creating unknown topics when both the
//! broker and the request allow it.
//!
//! With an authorizer (KafkaApis.handleTopicMetadataRequest): a listing of all topics shows only
//! those the session may DESCRIBE; a named topic it may not is TOPIC_AUTHORIZATION_FAILED,
//! whether or not it exists; auto-creation needs CREATE on the cluster or on the topic. Authorized
//! operations (KIP-430) are the session's own.

use std::sync::Arc;

use kafka_protocol::messages::metadata_response::{
    MetadataResponseBroker, MetadataResponsePartition, MetadataResponseTopic,
};
use kafka_protocol::messages::{BrokerId, MetadataRequest, MetadataResponse, TopicName};
use kafka_protocol::protocol::StrBytes;

use super::authorized::{CLUSTER_OPERATIONS, TOPIC_OPERATIONS};
use super::cluster;
use super::errors;
use super::RequestContext;
use crate::metadata::{validate_topic_name, CreateTopicError, Topic};
use crate::security::authorizer::{AclOperation, ResourceType, CLUSTER_NAME};

pub fn handle(ctx: &RequestContext<'_>, req: MetadataRequest) -> MetadataResponse {
    let broker = ctx.broker;
    let v = ctx.api_version;
    let (req_topic_ops, req_cluster_ops) = (
        req.include_topic_authorized_operations,
        req.include_cluster_authorized_operations,
    );
    // v0: an empty list means all topics; v1+: null means all, empty means none.
    let all = match &req.topics {
        None => true,
        Some(t) => t.is_empty() && v == 0,
    };
    // Auto-creation: always implied before v4, then the request's flag decides.
    let may_create =
        broker.config.auto_create_topics_enable && (v < 4 || req.allow_auto_topic_creation);
    let topics = if all {
        broker
            .catalog
            .all()
            .iter()
            .filter(|t| ctx.authorize_topic(AclOperation::Describe, &t.name))
            .map(|t| describe(ctx, t))
            .collect()
    } else {
        req.topics
            .unwrap_or_default()
            .into_iter()
            .map(|t| lookup(ctx, t, may_create))
            .collect()
    };
    // After any auto-creation, so that new topics' partitions are in it.
    let image = broker.catalog.image();
    let brokers = cluster::live_nodes(&image, ctx.listener.name())
        .into_iter()
        .map(|n| {
            MetadataResponseBroker::default()
                .with_node_id(BrokerId(n.id))
                .with_host(StrBytes::from_string(n.host))
                .with_port(n.port)
                .with_rack(n.rack.map(StrBytes::from_string))
        })
        .collect();
    let mut resp = MetadataResponse::default()
        .with_brokers(brokers)
        .with_cluster_id(Some(StrBytes::from_string(broker.cluster_id.clone())))
        .with_controller_id(BrokerId(cluster::controller_id(ctx, &image)))
        .with_topics(topics);
    // The session's operations when asked (v8+); none for a topic it may not describe or an
    // unknown topic id, and none on the cluster without DESCRIBE there.
    if v >= 8 && req_topic_ops {
        for t in &mut resp.topics {
            let refused = matches!(
                t.error_code,
                errors::TOPIC_AUTHORIZATION_FAILED | errors::UNKNOWN_TOPIC_ID
            );
            if let (false, Some(name)) = (refused, &t.name) {
                t.topic_authorized_operations =
                    ctx.authorized_operations(TOPIC_OPERATIONS, ResourceType::Topic, name.as_str());
            }
        }
    }
    if (8..=10).contains(&v) && req_cluster_ops {
        resp.cluster_authorized_operations = if ctx.authorize_cluster(AclOperation::Describe) {
            ctx.authorized_operations(CLUSTER_OPERATIONS, ResourceType::Cluster, CLUSTER_NAME)
        } else {
            0
        };
    }
    resp
}

fn lookup(
    ctx: &RequestContext<'_>,
    t: kafka_protocol::messages::metadata_request::MetadataRequestTopic,
    may_create: bool,
) -> MetadataResponseTopic {
    let catalog = &ctx.broker.catalog;
    let v = ctx.api_version;
    // A topic id names the topic (KafkaApis: ids win over names); the Java client sends the empty
    // string, not null, as the name of an id lookup.
    let by_id = !t.topic_id.is_nil() && t.name.as_ref().is_none_or(|n| n.is_empty());
    let Some(name) = t.name.filter(|_| !by_id).map(|n| n.0.to_string()) else {
        // Lookups by topic id alone are served from v12 (KIP-516); v10-11 carry ids but need names.
        if v < 12 {
            return error_topic(None, t.topic_id, errors::INVALID_REQUEST, v);
        }
        return match catalog.get_by_id(t.topic_id) {
            // Topic ids are not secret: Kafka names the id it refuses.
            Some(topic) if !ctx.authorize_topic(AclOperation::Describe, &topic.name) => {
                error_topic(None, t.topic_id, errors::TOPIC_AUTHORIZATION_FAILED, v)
            }
            Some(topic) => describe(ctx, &topic),
            None => error_topic(None, t.topic_id, errors::UNKNOWN_TOPIC_ID, v),
        };
    };
    // Whether the topic exists is not disclosed to a session that may not describe it.
    if !ctx.authorize_topic(AclOperation::Describe, &name) {
        return error_topic(
            Some(name),
            uuid::Uuid::nil(),
            errors::TOPIC_AUTHORIZATION_FAILED,
            v,
        );
    }
    if let Some(topic) = catalog.get(&name) {
        return describe(ctx, &topic);
    }
    if may_create
        && !ctx.authorize_cluster(AclOperation::Create)
        && !ctx.authorize_topic(AclOperation::Create, &name)
    {
        return error_topic(
            Some(name),
            uuid::Uuid::nil(),
            errors::TOPIC_AUTHORIZATION_FAILED,
            v,
        );
    }
    if validate_topic_name(&name).is_err() {
        return error_topic(
            Some(name),
            uuid::Uuid::nil(),
            errors::INVALID_TOPIC_EXCEPTION,
            v,
        );
    }
    if !may_create {
        return error_topic(
            Some(name),
            uuid::Uuid::nil(),
            errors::UNKNOWN_TOPIC_OR_PARTITION,
            v,
        );
    }
    // Internal topics are created on first use too, with their own partition counts.
    let partitions = match name.as_str() {
        "__consumer_offsets" => ctx.broker.config.offsets_topic_num_partitions,
        "__transaction_state" => ctx.broker.config.transaction_state_log_num_partitions,
        _ => ctx.broker.config.num_partitions,
    };
    match catalog.get_or_create(&name, partitions, ctx.broker.clock.now_ms()) {
        Ok(topic) => describe(ctx, &topic),
        // Kafka leaves a colliding topic unknown rather than naming the collision here.
        Err(CreateTopicError::Collision(..)) => error_topic(
            Some(name),
            uuid::Uuid::nil(),
            errors::UNKNOWN_TOPIC_OR_PARTITION,
            v,
        ),
        Err(e) => {
            tracing::warn!(topic = %name, error = %e, "auto-create failed");
            error_topic(
                Some(name),
                uuid::Uuid::nil(),
                errors::create_topic_error_code(&e),
                v,
            )
        }
    }
}

fn describe(ctx: &RequestContext<'_>, topic: &Arc<Topic>) -> MetadataResponseTopic {
    let v = ctx.api_version;
    let image = ctx.broker.catalog.image();
    let ids = |ids: &[i32]| ids.iter().copied().map(BrokerId).collect::<Vec<_>>();
    let partitions = topic
        .partitions
        .iter()
        .map(|p| {
            let resp = MetadataResponsePartition::default().with_partition_index(p.index);
            let Some(reg) = cluster::partition(&image, topic.topic_id, p.index) else {
                return resp
                    .with_leader_id(BrokerId(-1))
                    .with_leader_epoch(p.leader_epoch());
            };
            let view = cluster::PartitionView::new(&image, reg);
            resp.with_error_code(view.error_code())
                .with_leader_id(BrokerId(view.leader()))
                .with_leader_epoch(reg.leader_epoch)
                .with_replica_nodes(ids(&reg.replicas))
                .with_isr_nodes(ids(&reg.isr))
                .with_offline_replicas(ids(&view.offline_replicas()))
        })
        .collect();
    let mut t = MetadataResponseTopic::default()
        .with_name(Some(TopicName(StrBytes::from_string(topic.name.clone()))))
        .with_is_internal(topic.is_internal())
        .with_partitions(partitions);
    if v >= 10 {
        t.topic_id = topic.topic_id;
    }
    t
}

fn error_topic(name: Option<String>, id: uuid::Uuid, code: i16, v: i16) -> MetadataResponseTopic {
    let mut t = MetadataResponseTopic::default()
        .with_error_code(code)
        .with_name(name.map(|n| TopicName(StrBytes::from_string(n))));
    if v >= 10 {
        t.topic_id = id;
    }
    t
}
