//! DescribeAcls (key 29), CreateAcls (key 30) and DeleteAcls (key 31): the ACLs `kafka-acls.sh`
//! and the admin clients manage, kept in the metadata log (Kafka's AclApis on the broker,
//! AclControlManager in the controller).
//!
//! Each needs CLUSTER DESCRIBE (DescribeAcls) or CLUSTER ALTER (the others); without an
//! authorizer each answers SECURITY_DISABLED, as Kafka does. A request with an UNKNOWN (code 0)
//! resource type, pattern type, operation or permission fails to parse in Kafka, which closes
//! the connection; so does gregor. CreateAcls validates each ACL as AclApis and
//! AclControlManager.validateNewAcl do (INVALID_REQUEST with Kafka's messages), ignores an ACL
//! that already exists (success, no record), and commits the new ones as
//! AccessControlEntryRecords with fresh ids; DeleteAcls removes every ACL a filter matches with
//! RemoveAccessControlEntryRecords (an ACL two filters match is removed once and reported by
//! both). At most MAX_RECORDS_PER_USER_OP records per request, as Kafka's controller bounds them.

use std::collections::{BTreeMap, BTreeSet};

use kafka_protocol::messages::create_acls_request::AclCreation;
use kafka_protocol::messages::create_acls_response::AclCreationResult;
use kafka_protocol::messages::delete_acls_response::{
    DeleteAclsFilterResult, DeleteAclsMatchingAcl,
};
use kafka_protocol::messages::describe_acls_response::{AclDescription, DescribeAclsResource};
use kafka_protocol::messages::{
    CreateAclsRequest, CreateAclsResponse, DeleteAclsRequest, DeleteAclsResponse,
    DescribeAclsRequest, DescribeAclsResponse,
};
use kafka_protocol::protocol::StrBytes;
use uuid::Uuid;

use super::errors;
use super::{ProtocolError, RequestContext};
use crate::metadata::image::{acl_record, MetadataImage};
use crate::metadata::records::MetadataRecord;
use crate::security::authorizer::{
    AclFilter, AclOperation, AclPermissionType, PatternType, ResourceType, StandardAcl,
    CLUSTER_NAME, WILDCARD,
};

/// QuorumController's MAX_RECORDS_PER_USER_OP.
pub const MAX_RECORDS_PER_USER_OP: usize = 10_000;

type ApiError = (i16, String);

fn str_bytes(s: &str) -> StrBytes {
    StrBytes::from_string(s.to_string())
}

/// Kafka's request parsing: an UNKNOWN code (0) anywhere makes the request unparseable.
fn reject_unknown(codes: [i8; 4], what: &str) -> Result<(), ProtocolError> {
    if codes.contains(&0) {
        return Err(ProtocolError::Decode(format!(
            "{what} contain UNKNOWN elements"
        )));
    }
    Ok(())
}

/// Why the request as a whole is refused: no CLUSTER `op`, or no authorizer.
fn refused(ctx: &RequestContext<'_>, op: AclOperation) -> Option<ApiError> {
    if !ctx.authorize_cluster(op) {
        return Some((
            errors::CLUSTER_AUTHORIZATION_FAILED,
            "Cluster authorization failed.".into(),
        ));
    }
    if ctx.broker.config.authorizer.is_none() {
        return Some((
            errors::SECURITY_DISABLED,
            "No Authorizer is configured.".into(),
        ));
    }
    None
}

fn filter_of(
    resource_type: i8,
    resource_name: Option<&StrBytes>,
    pattern_type: i8,
    principal: Option<&StrBytes>,
    host: Option<&StrBytes>,
    operation: i8,
    permission_type: i8,
) -> AclFilter {
    AclFilter {
        resource_type: ResourceType::from_code(resource_type),
        resource_name: resource_name.map(|s| s.to_string()),
        pattern_type: PatternType::from_code(pattern_type),
        principal: principal.map(|s| s.to_string()),
        host: host.map(|s| s.to_string()),
        operation: AclOperation::from_code(operation),
        permission_type: AclPermissionType::from_code(permission_type),
    }
}

pub fn describe(
    ctx: &RequestContext<'_>,
    req: DescribeAclsRequest,
) -> Result<DescribeAclsResponse, ProtocolError> {
    reject_unknown(
        [
            req.resource_type_filter,
            req.pattern_type_filter,
            req.operation,
            req.permission_type,
        ],
        "DescribeAclsRequest",
    )?;
    let resp = DescribeAclsResponse::default();
    if let Some((code, mut message)) = refused(ctx, AclOperation::Describe) {
        if code == errors::SECURITY_DISABLED {
            message = "No Authorizer is configured on the broker".into();
        }
        return Ok(resp
            .with_error_code(code)
            .with_error_message(Some(StrBytes::from_string(message))));
    }
    let filter = filter_of(
        req.resource_type_filter,
        req.resource_name_filter.as_ref(),
        req.pattern_type_filter,
        req.principal_filter.as_ref(),
        req.host_filter.as_ref(),
        req.operation,
        req.permission_type,
    );
    let image = ctx.broker.catalog.image();
    Ok(resp.with_resources(describe_image(&image, &filter)))
}

/// The ACLs the filter matches, grouped by resource pattern (DescribeAclsResponse.aclsResources).
fn describe_image(image: &MetadataImage, filter: &AclFilter) -> Vec<DescribeAclsResource> {
    let mut by_pattern: BTreeMap<(ResourceType, &str, PatternType), Vec<AclDescription>> =
        BTreeMap::new();
    for acl in image.acls.values().filter(|a| filter.matches(a)) {
        by_pattern
            .entry((acl.resource_type, &acl.resource_name, acl.pattern_type))
            .or_default()
            .push(
                AclDescription::default()
                    .with_principal(str_bytes(&acl.principal))
                    .with_host(str_bytes(&acl.host))
                    .with_operation(acl.operation.code())
                    .with_permission_type(acl.permission_type.code()),
            );
    }
    by_pattern
        .into_iter()
        .map(|((rt, name, pt), acls)| {
            DescribeAclsResource::default()
                .with_resource_type(rt.code())
                .with_resource_name(str_bytes(name))
                .with_pattern_type(pt.code())
                .with_acls(acls)
        })
        .collect()
}

fn invalid(message: String) -> ApiError {
    (errors::INVALID_REQUEST, message)
}

/// AclApis' checks, then AclControlManager.validateNewAcl's, in their order.
fn validate(c: &AclCreation) -> Result<StandardAcl, ApiError> {
    let acl = StandardAcl {
        resource_type: ResourceType::from_code(c.resource_type),
        resource_name: c.resource_name.to_string(),
        pattern_type: PatternType::from_code(c.resource_pattern_type),
        principal: c.principal.to_string(),
        host: c.host.to_string(),
        operation: AclOperation::from_code(c.operation),
        permission_type: AclPermissionType::from_code(c.permission_type),
    };
    if acl.resource_type == ResourceType::Cluster && acl.resource_name != CLUSTER_NAME {
        return Err(invalid(format!(
            "The only valid name for the CLUSTER resource is {CLUSTER_NAME}"
        )));
    }
    if acl.resource_name.is_empty() {
        return Err(invalid("Invalid empty resource name".into()));
    }
    if matches!(acl.resource_type, ResourceType::Unknown | ResourceType::Any) {
        return Err(invalid(format!(
            "Invalid resourceType {}",
            acl.resource_type.name()
        )));
    }
    if !matches!(
        acl.pattern_type,
        PatternType::Literal | PatternType::Prefixed
    ) {
        return Err(invalid(format!(
            "Invalid patternType {}",
            acl.pattern_type.name()
        )));
    }
    if matches!(acl.operation, AclOperation::Unknown | AclOperation::Any) {
        return Err(invalid(format!(
            "Invalid operation {}",
            acl.operation.name()
        )));
    }
    if !matches!(
        acl.permission_type,
        AclPermissionType::Allow | AclPermissionType::Deny
    ) {
        return Err(invalid(format!(
            "Invalid permissionType {}",
            acl.permission_type.name()
        )));
    }
    if !acl.principal.contains(':') {
        return Err(invalid(format!(
            "Could not parse principal from `{}` (no colon is present separating the principal type from the principal name)",
            acl.principal
        )));
    }
    if acl.host.is_empty() {
        return Err(invalid("Host pattern cannot be null or empty".into()));
    }
    // Kafka 4.4 takes CIDR host patterns from metadata.version 4.4-IV1; gregor's metadata log is
    // at an older version, where Kafka refuses them so.
    if acl.host != WILDCARD && acl.host.contains('/') {
        return Err((
            errors::UNSUPPORTED_VERSION,
            "CIDR-based ACL host patterns require metadata version 4.4-IV1 or higher.".into(),
        ));
    }
    Ok(acl)
}

fn creation_result((code, message): (i16, Option<String>)) -> AclCreationResult {
    AclCreationResult::default()
        .with_error_code(code)
        .with_error_message(message.map(StrBytes::from_string))
}

pub fn create(
    ctx: &RequestContext<'_>,
    req: CreateAclsRequest,
) -> Result<CreateAclsResponse, ProtocolError> {
    for c in &req.creations {
        reject_unknown(
            [
                c.resource_type,
                c.resource_pattern_type,
                c.operation,
                c.permission_type,
            ],
            "CreatableAcls",
        )?;
    }
    let results: Vec<(i16, Option<String>)> = match refused(ctx, AclOperation::Alter) {
        Some((code, message)) => vec![(code, Some(message)); req.creations.len()],
        None => {
            let checked: Vec<Result<StandardAcl, ApiError>> =
                req.creations.iter().map(validate).collect();
            match ctx
                .broker
                .catalog
                .change_image(|image| create_records(image, &checked))
            {
                Ok(results) => results,
                Err(e) => {
                    tracing::error!(error = %e, "cannot commit ACLs");
                    let code = errors::metadata_write_error_code(&e, errors::UNKNOWN_SERVER_ERROR);
                    vec![(code, Some(e.to_string())); checked.len()]
                }
            }
        }
    };
    Ok(CreateAclsResponse::default()
        .with_results(results.into_iter().map(creation_result).collect()))
}

/// AclControlManager.createAcls on one image: a record for each valid ACL that is new.
fn create_records(
    image: &MetadataImage,
    checked: &[Result<StandardAcl, ApiError>],
) -> (Vec<MetadataRecord>, Vec<(i16, Option<String>)>) {
    let mut existing: BTreeSet<&StandardAcl> = image.acls.values().collect();
    let mut ids: BTreeSet<Uuid> = image.acls.keys().copied().collect();
    let mut records = Vec::new();
    let mut results = Vec::with_capacity(checked.len());
    for c in checked {
        match c {
            Ok(acl) => {
                if existing.insert(acl) {
                    let id = fresh_id(&mut ids);
                    records.push(MetadataRecord::AccessControlEntry(acl_record(id, acl)));
                }
                results.push((errors::NONE, None));
            }
            Err((code, message)) => results.push((*code, Some(message.clone()))),
        }
    }
    if records.len() > MAX_RECORDS_PER_USER_OP {
        let message = format!(
            "Cannot create more than {MAX_RECORDS_PER_USER_OP} acls in a single operation."
        );
        let failed = vec![(errors::UNKNOWN_SERVER_ERROR, Some(message)); checked.len()];
        return (Vec::new(), failed);
    }
    (records, results)
}

/// A random id no ACL has (AclControlManager.newAclId).
fn fresh_id(taken: &mut BTreeSet<Uuid>) -> Uuid {
    loop {
        let id = Uuid::new_v4();
        if taken.insert(id) {
            return id;
        }
    }
}

pub fn delete(
    ctx: &RequestContext<'_>,
    req: DeleteAclsRequest,
) -> Result<DeleteAclsResponse, ProtocolError> {
    for f in &req.filters {
        reject_unknown(
            [
                f.resource_type_filter,
                f.pattern_type_filter,
                f.operation,
                f.permission_type,
            ],
            "Filters",
        )?;
    }
    let filters: Vec<AclFilter> = req
        .filters
        .iter()
        .map(|f| {
            filter_of(
                f.resource_type_filter,
                f.resource_name_filter.as_ref(),
                f.pattern_type_filter,
                f.principal_filter.as_ref(),
                f.host_filter.as_ref(),
                f.operation,
                f.permission_type,
            )
        })
        .collect();
    let results = match refused(ctx, AclOperation::Alter) {
        Some((code, message)) => vec![filter_error(code, message); filters.len()],
        None => match ctx
            .broker
            .catalog
            .change_image(|image| delete_records(image, &filters))
        {
            Ok(results) => results,
            Err(e) => {
                tracing::error!(error = %e, "cannot commit ACL removals");
                let code = errors::metadata_write_error_code(&e, errors::UNKNOWN_SERVER_ERROR);
                vec![filter_error(code, e.to_string()); filters.len()]
            }
        },
    };
    Ok(DeleteAclsResponse::default().with_filter_results(results))
}

fn filter_error(code: i16, message: String) -> DeleteAclsFilterResult {
    DeleteAclsFilterResult::default()
        .with_error_code(code)
        .with_error_message(Some(StrBytes::from_string(message)))
}

fn matching_acl(acl: &StandardAcl) -> DeleteAclsMatchingAcl {
    DeleteAclsMatchingAcl::default()
        .with_resource_type(acl.resource_type.code())
        .with_resource_name(str_bytes(&acl.resource_name))
        .with_pattern_type(acl.pattern_type.code())
        .with_principal(str_bytes(&acl.principal))
        .with_host(str_bytes(&acl.host))
        .with_operation(acl.operation.code())
        .with_permission_type(acl.permission_type.code())
}

/// AclControlManager.deleteAcls on one image: each filter's matches, and one removal per ACL
/// matched by any filter.
fn delete_records(
    image: &MetadataImage,
    filters: &[AclFilter],
) -> (Vec<MetadataRecord>, Vec<DeleteAclsFilterResult>) {
    let mut removed: BTreeSet<Uuid> = BTreeSet::new();
    let mut results = Vec::with_capacity(filters.len());
    for filter in filters {
        if let Some(message) = filter.unknown_part() {
            results.push(filter_error(errors::INVALID_REQUEST, message.into()));
            continue;
        }
        let matched: Vec<(&Uuid, &StandardAcl)> = image
            .acls
            .iter()
            .filter(|(_, a)| filter.matches(a))
            .collect();
        let new = matched
            .iter()
            .filter(|(id, _)| !removed.contains(id))
            .count();
        if removed.len() + new > MAX_RECORDS_PER_USER_OP {
            results.push(filter_error(
                errors::UNKNOWN_SERVER_ERROR,
                format!(
                    "Cannot remove more than {MAX_RECORDS_PER_USER_OP} acls in a single delete operation."
                ),
            ));
            continue;
        }
        removed.extend(matched.iter().map(|(id, _)| **id));
        results.push(
            DeleteAclsFilterResult::default()
                .with_matching_acls(matched.iter().map(|(_, a)| matching_acl(a)).collect()),
        );
    }
    let records = removed
        .into_iter()
        .map(|id| MetadataRecord::RemoveAccessControlEntry { id })
        .collect();
    (records, results)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn creation(rt: i8, name: &str, pt: i8, principal: &str, host: &str) -> AclCreation {
        AclCreation::default()
            .with_resource_type(rt)
            .with_resource_name(str_bytes(name))
            .with_resource_pattern_type(pt)
            .with_principal(str_bytes(principal))
            .with_host(str_bytes(host))
            .with_operation(3)
            .with_permission_type(3)
    }

    #[test]
    fn validation_as_kafka() {
        let ok = |c: AclCreation| validate(&c).map(|_| ());
        assert!(ok(creation(2, "t", 3, "User:a", "*")).is_ok());
        assert!(ok(creation(4, "kafka-cluster", 3, "User:a", "*")).is_ok());
        let code = |c: AclCreation| validate(&c).err().map(|(code, _)| code);
        assert_eq!(
            code(creation(4, "other", 3, "User:a", "*")),
            Some(errors::INVALID_REQUEST)
        );
        assert_eq!(
            code(creation(2, "", 3, "User:a", "*")),
            Some(errors::INVALID_REQUEST)
        );
        assert_eq!(
            code(creation(1, "t", 3, "User:a", "*")),
            Some(errors::INVALID_REQUEST)
        );
        // MATCH and ANY are filter pattern types, not an ACL's.
        assert_eq!(
            code(creation(2, "t", 2, "User:a", "*")),
            Some(errors::INVALID_REQUEST)
        );
        assert_eq!(
            code(creation(2, "t", 99, "User:a", "*")),
            Some(errors::INVALID_REQUEST)
        );
        assert_eq!(
            code(creation(2, "t", 3, "alice", "*")),
            Some(errors::INVALID_REQUEST)
        );
        assert_eq!(
            code(creation(2, "t", 3, "User:a", "")),
            Some(errors::INVALID_REQUEST)
        );
        assert_eq!(
            code(creation(2, "t", 3, "User:a", "10.0.0.0/8")),
            Some(errors::UNSUPPORTED_VERSION)
        );
        let (_, message) = validate(&creation(1, "t", 3, "User:a", "*")).unwrap_err();
        assert_eq!(message, "Invalid resourceType ANY");
    }

    #[test]
    fn create_ignores_existing_and_duplicate_acls() {
        let acl = validate(&creation(2, "t", 3, "User:a", "*")).unwrap();
        let image = MetadataImage::empty();
        let checked = vec![Ok(acl.clone()), Ok(acl.clone())];
        let (records, results) = create_records(&image, &checked);
        assert_eq!(records.len(), 1);
        assert_eq!(results, vec![(0, None), (0, None)]);
        let image =
            crate::metadata::image::replay_all(std::sync::Arc::new(image), &records).unwrap();
        let (records, _) = create_records(&image, &[Ok(acl)]);
        assert!(records.is_empty());
    }
}
