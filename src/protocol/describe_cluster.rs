//! DescribeCluster (key 60): this node as the only broker, and (as KRaft brokers report it) also
//! as the controller id. Asking a broker for controller endpoints gets Kafka's error
//! (AuthHelper.computeDescribeClusterResponse).

use kafka_protocol::messages::describe_cluster_response::DescribeClusterBroker;
use kafka_protocol::messages::{BrokerId, DescribeClusterRequest, DescribeClusterResponse};
use kafka_protocol::protocol::StrBytes;

use super::authorized::CLUSTER_OPERATIONS;
use super::errors;
use super::RequestContext;

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
    let node = DescribeClusterBroker::default()
        .with_broker_id(BrokerId(broker.node_id))
        .with_host(StrBytes::from_string(broker.endpoint.host.clone()))
        .with_port(i32::from(broker.endpoint.port))
        .with_rack(None);
    let mut r = DescribeClusterResponse::default()
        .with_error_message(None)
        .with_cluster_id(StrBytes::from_string(broker.cluster_id.clone()))
        .with_controller_id(BrokerId(broker.node_id))
        .with_brokers(vec![node]);
    if v >= 1 {
        r.endpoint_type = ENDPOINT_BROKERS;
    }
    // Without an authorizer Kafka grants everything and says so when asked.
    r.cluster_authorized_operations = if req.include_cluster_authorized_operations {
        CLUSTER_OPERATIONS
    } else {
        i32::MIN
    };
    r
}
