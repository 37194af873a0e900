//! What each resource supports without an authorizer, reported as authorized operations when a
//! client asks (Metadata, DescribeGroups, ConsumerGroupDescribe, DescribeCluster): bit n set for
//! AclOperation code n (READ 3, WRITE 4, CREATE 5, DELETE 6, ALTER 7, DESCRIBE 8,
//! CLUSTER_ACTION 9, DESCRIBE_CONFIGS 10, ALTER_CONFIGS 11, IDEMPOTENT_WRITE 12).

const fn bits(ops: &[u8]) -> i32 {
    let mut v = 0;
    let mut i = 0;
    while i < ops.len() {
        v |= 1 << ops[i];
        i += 1;
    }
    v
}

/// AclEntry.supportedOperations(TOPIC).
pub const TOPIC_OPERATIONS: i32 = bits(&[3, 4, 5, 6, 7, 8, 10, 11]);
/// AclEntry.supportedOperations(CLUSTER).
pub const CLUSTER_OPERATIONS: i32 = bits(&[5, 7, 8, 9, 10, 11, 12]);
/// AclEntry.supportedOperations(GROUP): group configs (KIP-848) added DESCRIBE_CONFIGS and
/// ALTER_CONFIGS.
pub const GROUP_OPERATIONS: i32 = bits(&[3, 6, 8, 10, 11]);

use super::RequestContext;
use crate::security::authorizer::{AclOperation, Requester, ResourceType, CLUSTER_NAME};

/// Authorization as KafkaApis asks for it (AuthHelper): every answer is "yes" without an
/// authorizer; with one, the session's principal and address against the image's ACLs.
impl RequestContext<'_> {
    fn requester(&self) -> Requester<'_> {
        Requester {
            principal: &self.principal,
            host: &self.host,
        }
    }

    /// Whether the session may do `op` on the resource (AuthHelper.authorize); denials are
    /// logged at debug level.
    pub fn authorize(&self, op: AclOperation, resource_type: ResourceType, name: &str) -> bool {
        let Some(authorizer) = &self.broker.config.authorizer else {
            return true;
        };
        let image = self.broker.catalog.image();
        let allowed = authorizer.authorize(
            image.acls.values(),
            self.requester(),
            op,
            resource_type,
            name,
        );
        if !allowed {
            tracing::debug!(
                principal = %self.principal, host = %self.host, operation = ?op,
                resource = ?resource_type, name, "denied"
            );
        }
        allowed
    }

    pub fn authorize_topic(&self, op: AclOperation, topic: &str) -> bool {
        self.authorize(op, ResourceType::Topic, topic)
    }

    pub fn authorize_group(&self, op: AclOperation, group_id: &str) -> bool {
        self.authorize(op, ResourceType::Group, group_id)
    }

    pub fn authorize_transactional_id(&self, op: AclOperation, id: &str) -> bool {
        self.authorize(op, ResourceType::TransactionalId, id)
    }

    /// `authorize` on the cluster resource.
    pub fn authorize_cluster(&self, op: AclOperation) -> bool {
        self.authorize(op, ResourceType::Cluster, CLUSTER_NAME)
    }

    /// Whether `op` is allowed on some resource of the type (Authorizer.authorizeByResourceType).
    pub fn authorize_by_resource_type(
        &self,
        op: AclOperation,
        resource_type: ResourceType,
    ) -> bool {
        let Some(authorizer) = &self.broker.config.authorizer else {
            return true;
        };
        let image = self.broker.catalog.image();
        authorizer.authorize_by_resource_type(
            image.acls.values(),
            self.requester(),
            op,
            resource_type,
        )
    }

    /// KIP-430: of the operations `supported` (a bit field as above), those the session may do
    /// on the resource; all of them without an authorizer.
    pub fn authorized_operations(
        &self,
        supported: i32,
        resource_type: ResourceType,
        name: &str,
    ) -> i32 {
        let Some(authorizer) = &self.broker.config.authorizer else {
            return supported;
        };
        let image = self.broker.catalog.image();
        authorizer.authorized_operations(
            image.acls.values(),
            self.requester(),
            supported,
            resource_type,
            name,
        )
    }
}

/// ConfigResource.Type ids (DescribeConfigs, AlterConfigs, IncrementalAlterConfigs).
const CONFIG_TOPIC: i8 = 2;
const CONFIG_BROKER: i8 = 4;
const CONFIG_BROKER_LOGGER: i8 = 8;
const CONFIG_GROUP: i8 = 32;

impl RequestContext<'_> {
    /// Whether the session may `op` (DESCRIBE_CONFIGS or ALTER_CONFIGS) the configs of a
    /// resource, else the error Kafka gives (KafkaApis.configsAuthorizationApiError): a topic's
    /// on the topic, a broker's on the cluster, a group's on the group. Other types are left to
    /// the handler, which refuses them.
    pub fn authorize_configs(
        &self,
        op: AclOperation,
        resource_type: i8,
        name: &str,
    ) -> Result<(), i16> {
        use super::errors;
        let (allowed, code) = match resource_type {
            CONFIG_TOPIC => (
                self.authorize_topic(op, name),
                errors::TOPIC_AUTHORIZATION_FAILED,
            ),
            CONFIG_BROKER | CONFIG_BROKER_LOGGER => (
                self.authorize_cluster(op),
                errors::CLUSTER_AUTHORIZATION_FAILED,
            ),
            CONFIG_GROUP => (
                self.authorize_group(op, name),
                errors::GROUP_AUTHORIZATION_FAILED,
            ),
            _ => (true, errors::NONE),
        };
        if allowed {
            Ok(())
        } else {
            Err(code)
        }
    }
}
