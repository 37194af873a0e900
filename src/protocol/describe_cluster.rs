//! DescribeCluster (key 60): the live brokers of the metadata image, and (as KRaft brokers report
//! it) one of them as the controller id. Asking a broker for controller endpoints gets Kafka's error
//! (AuthHelper.computeDescribeClusterResponse).

use kafka_protocol::messages::describe_cluster_response::DescribeClusterBroker;
use kafka_protocol::messages::{BrokerId, DescribeClusterRequest, DescribeClusterResponse};
use kafka_protocol::protocol::StrBytes;

use super::authorized::CLUSTER_OPERATIONS;
use super::cluster;
use super::errors;
use super::RequestContext;
use crate::security::authorizer::{AclOperation, ResourceType, CLUSTER_NAME};

const ENDPOINT_BROKERS: i8 = 1;
const ENDPOINT_CONTROLLERS: i8 = 2;

pub fn handle(ctx: &RequestContext<'_>, req: DescribeClusterRequest) -> DescribeClusterResponse {
    let v = ctx.api_version;
    let broker = ctx.broker;
    let wanted = req.endpoint_type;
    if wanted != ENDPOINT_BROKERS {
        let (code, message) = if wanted == ENDPOINT_CONTROLLERS {
            (
                errors::MISMATCHED_ENDPOINT_TYPE,
                "The request was sent to an endpoint of type BROKER, but we wanted an endpoint of type CONTROLLER".to_string(),
            )
        } else {
            (
                errors::UNSUPPORTED_ENDPOINT_TYPE,
                format!("Unsupported endpoint type {wanted}"),
            )
        };
        let code = if v == 0 {
            errors::INVALID_REQUEST
        } else {
            code
        };
        let mut r = DescribeClusterResponse::default()
            .with_error_code(code)
            .with_error_message(Some(StrBytes::from_string(message)));
        if v >= 1 {
            r.endpoint_type = ENDPOINT_BROKERS;
        }
        return r;
    }
    let image = broker.catalog.image();
    let nodes = cluster::live_nodes(&image, ctx.listener.name())
        .into_iter()
        .map(|n| {
            DescribeClusterBroker::default()
                .with_broker_id(BrokerId(n.id))
                .with_host(StrBytes::from_string(n.host))
                .with_port(n.port)
                .with_rack(n.rack.map(StrBytes::from_string))
        })
        .collect();
    let mut r = DescribeClusterResponse::default()
        .with_error_message(None)
        .with_cluster_id(StrBytes::from_string(broker.cluster_id.clone()))
        .with_controller_id(BrokerId(cluster::controller_id(ctx, &image)))
        .with_brokers(nodes);
    if v >= 1 {
        r.endpoint_type = ENDPOINT_BROKERS;
    }
    // KIP-430, as AuthHelper.computeDescribeClusterResponse: none without DESCRIBE.
    r.cluster_authorized_operations = if !req.include_cluster_authorized_operations {
        i32::MIN
    } else if ctx.authorize_cluster(AclOperation::Describe) {
        ctx.authorized_operations(CLUSTER_OPERATIONS, ResourceType::Cluster, CLUSTER_NAME)
    } else {
        0
    };
    r
}
