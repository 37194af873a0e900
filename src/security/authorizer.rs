//! Authorization: who may do what, decided as Kafka's StandardAuthorizer decides it
//! (`org.apache.kafka.metadata.authorizer.StandardAuthorizerData`).
//!
//! An ACL (`StandardAcl`) names a resource pattern (type, name, LITERAL or PREFIXED; the LITERAL
//! name `*` is the wildcard), a principal (`User:alice`, or `User:*` for everyone), a host (an
//! address, or `*`), an operation and ALLOW or DENY. A request is allowed when the principal is
//! one of `super.users`, or when an ALLOW ACL matches and no DENY ACL does (DENY wins). An ALLOW
//! for READ, WRITE, DELETE or ALTER also allows DESCRIBE, and ALTER_CONFIGS allows
//! DESCRIBE_CONFIGS; ALL allows (or denies) everything. A resource that no ACL names at all (for
//! any principal) is allowed only with `allow.everyone.if.no.acl.found=true`.
//!
//! The ACLs themselves live in the metadata image (`MetadataImage::acls`, replayed from
//! AccessControlEntryRecord / RemoveAccessControlEntryRecord); this module holds the settings
//! and the decision, and handlers ask through `RequestContext::authorize`.

use std::collections::BTreeSet;
use std::net::IpAddr;

/// The class name Kafka 4 loads for the KRaft authorizer; the only one gregor serves (Kafka 4
/// removed ZooKeeper's `kafka.security.authorizer.AclAuthorizer` and refuses to start with it).
pub const STANDARD_AUTHORIZER: &str = "org.apache.kafka.metadata.authorizer.StandardAuthorizer";

/// The settings StandardAuthorizer reads besides its class name.
pub const SUPER_USERS: &str = "super.users";
pub const ALLOW_EVERYONE_IF_NO_ACL_FOUND: &str = "allow.everyone.if.no.acl.found";

/// The name of the one CLUSTER resource (AuthorizerUtils / CLUSTER_NAME).
pub const CLUSTER_NAME: &str = "kafka-cluster";
/// The wildcard resource name and principal.
pub const WILDCARD: &str = "*";
pub const WILDCARD_PRINCIPAL: &str = "User:*";

macro_rules! code_enum {
    ($(#[$m:meta])* $name:ident { $($v:ident = $c:expr),* $(,)? }) => {
        $(#[$m])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub enum $name { $($v),* }

        impl $name {
            /// The variant of a wire code; codes Kafka does not define are Unknown, as its
            /// `fromCode` makes them.
            pub fn from_code(code: i8) -> $name {
                match code {
                    $($c => $name::$v,)*
                    _ => $name::Unknown,
                }
            }

            pub fn code(self) -> i8 {
                match self { $($name::$v => $c),* }
            }

            /// The Java enum constant's name (`TRANSACTIONAL_ID`), as Kafka's messages print it.
            pub fn name(self) -> String {
                screaming_snake(&format!("{self:?}"))
            }
        }
    };
}

fn screaming_snake(camel: &str) -> String {
    let mut out = String::with_capacity(camel.len() + 4);
    for (i, c) in camel.chars().enumerate() {
        if c.is_ascii_uppercase() && i > 0 {
            out.push('_');
        }
        out.push(c.to_ascii_uppercase());
    }
    out
}

code_enum!(
    /// org.apache.kafka.common.resource.ResourceType.
    ResourceType {
        Unknown = 0,
        Any = 1,
        Topic = 2,
        Group = 3,
        Cluster = 4,
        TransactionalId = 5,
        DelegationToken = 6,
        User = 7,
    }
);

code_enum!(
    /// org.apache.kafka.common.resource.PatternType.
    PatternType {
        Unknown = 0,
        Any = 1,
        Match = 2,
        Literal = 3,
        Prefixed = 4,
    }
);

code_enum!(
    /// org.apache.kafka.common.acl.AclOperation.
    AclOperation {
        Unknown = 0,
        Any = 1,
        All = 2,
        Read = 3,
        Write = 4,
        Create = 5,
        Delete = 6,
        Alter = 7,
        Describe = 8,
        ClusterAction = 9,
        DescribeConfigs = 10,
        AlterConfigs = 11,
        IdempotentWrite = 12,
        CreateTokens = 13,
        DescribeTokens = 14,
        TwoPhaseCommit = 15,
    }
);

code_enum!(
    /// org.apache.kafka.common.acl.AclPermissionType.
    AclPermissionType {
        Unknown = 0,
        Any = 1,
        Deny = 2,
        Allow = 3,
    }
);

/// One ACL as the image keeps it (Kafka's StandardAcl).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct StandardAcl {
    pub resource_type: ResourceType,
    pub resource_name: String,
    pub pattern_type: PatternType,
    pub principal: String,
    pub host: String,
    pub operation: AclOperation,
    pub permission_type: AclPermissionType,
}

impl StandardAcl {
    /// Whether this ACL's pattern covers the resource `(resource_type, name)`.
    fn covers(&self, resource_type: ResourceType, name: &str) -> bool {
        self.resource_type == resource_type
            && match self.pattern_type {
                PatternType::Literal => {
                    self.resource_name == name || self.resource_name == WILDCARD
                }
                PatternType::Prefixed => name.starts_with(self.resource_name.as_str()),
                _ => false,
            }
    }

    /// StandardAuthorizerData.findResult: this ACL's verdict on `op` by `principal` from
    /// `host`, or `None` when it does not apply.
    fn verdict(&self, principal: &str, host: &str, op: AclOperation) -> Option<bool> {
        if self.principal != principal && self.principal != WILDCARD_PRINCIPAL {
            return None;
        }
        if self.host != WILDCARD && self.host != host {
            return None;
        }
        let allow = self.permission_type == AclPermissionType::Allow;
        let applies = self.operation == AclOperation::All
            || self.operation == op
            // Implied operations come only from ALLOW ACLs: a DENY of READ does not deny
            // DESCRIBE.
            || (allow && implies(self.operation, op));
        applies.then_some(allow)
    }
}

/// Whether an ALLOW for `granted` also allows `wanted` (READ, WRITE, DELETE and ALTER imply
/// DESCRIBE; ALTER_CONFIGS implies DESCRIBE_CONFIGS).
fn implies(granted: AclOperation, wanted: AclOperation) -> bool {
    use AclOperation::*;
    match wanted {
        Describe => matches!(granted, Read | Write | Delete | Alter),
        DescribeConfigs => granted == AlterConfigs,
        _ => false,
    }
}

/// A filter over ACLs (Kafka's AclBindingFilter): DescribeAcls and DeleteAcls select with it.
/// `None` name, principal or host match anything.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AclFilter {
    pub resource_type: ResourceType,
    pub resource_name: Option<String>,
    pub pattern_type: PatternType,
    pub principal: Option<String>,
    pub host: Option<String>,
    pub operation: AclOperation,
    pub permission_type: AclPermissionType,
}

impl AclFilter {
    /// AclBindingFilter.isUnknown split as AclControlManager.validateFilter reports it.
    pub fn unknown_part(&self) -> Option<&'static str> {
        if self.resource_type == ResourceType::Unknown || self.pattern_type == PatternType::Unknown
        {
            Some("Unknown patternFilter.")
        } else if self.operation == AclOperation::Unknown
            || self.permission_type == AclPermissionType::Unknown
        {
            Some("Unknown entryFilter.")
        } else {
            None
        }
    }

    /// AclBindingFilter.matches: ResourcePatternFilter and AccessControlEntryFilter together.
    pub fn matches(&self, acl: &StandardAcl) -> bool {
        self.pattern_matches(acl) && self.entry_matches(acl)
    }

    fn pattern_matches(&self, acl: &StandardAcl) -> bool {
        if self.resource_type != ResourceType::Any && self.resource_type != acl.resource_type {
            return false;
        }
        if !matches!(self.pattern_type, PatternType::Any | PatternType::Match)
            && self.pattern_type != acl.pattern_type
        {
            return false;
        }
        let Some(name) = &self.resource_name else {
            return true;
        };
        if self.pattern_type == PatternType::Any || self.pattern_type == acl.pattern_type {
            return *name == acl.resource_name;
        }
        // MATCH: every ACL that would apply to a resource of that name.
        match acl.pattern_type {
            PatternType::Literal => *name == acl.resource_name || acl.resource_name == WILDCARD,
            PatternType::Prefixed => name.starts_with(acl.resource_name.as_str()),
            _ => false,
        }
    }

    fn entry_matches(&self, acl: &StandardAcl) -> bool {
        self.principal.as_ref().is_none_or(|p| *p == acl.principal)
            && self.host.as_ref().is_none_or(|h| *h == acl.host)
            && (self.operation == AclOperation::Any || self.operation == acl.operation)
            && (self.permission_type == AclPermissionType::Any
                || self.permission_type == acl.permission_type)
    }
}

/// Who asks: the session's principal and the client's address as Kafka prints it.
#[derive(Debug, Clone, Copy)]
pub struct Requester<'a> {
    pub principal: &'a str,
    pub host: &'a str,
}

/// StandardAuthorizer's settings: `super.users` and `allow.everyone.if.no.acl.found`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Authorizer {
    pub super_users: BTreeSet<String>,
    pub allow_everyone_if_no_acl_found: bool,
}

impl Authorizer {
    /// From the settings: `super.users` is a semicolon-separated list of principals.
    pub fn new(super_users: &str, allow_everyone_if_no_acl_found: bool) -> Authorizer {
        Authorizer {
            super_users: super_users
                .split(';')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(str::to_string)
                .collect(),
            allow_everyone_if_no_acl_found,
        }
    }

    /// StandardAuthorizerData.authorize for the LITERAL resource `(resource_type, name)`.
    pub fn authorize<'a>(
        &self,
        acls: impl IntoIterator<Item = &'a StandardAcl>,
        who: Requester<'_>,
        op: AclOperation,
        resource_type: ResourceType,
        name: &str,
    ) -> bool {
        if self.super_users.contains(who.principal) {
            return true;
        }
        let mut resource_has_acls = false;
        let mut allowed = false;
        for acl in acls {
            if !acl.covers(resource_type, name) {
                continue;
            }
            resource_has_acls = true;
            match acl.verdict(who.principal, who.host, op) {
                Some(false) => return false,
                Some(true) => allowed = true,
                None => {}
            }
        }
        allowed || (!resource_has_acls && self.allow_everyone_if_no_acl_found)
    }

    /// Authorizer.authorizeByResourceType: whether `op` is allowed on some resource of the
    /// type, i.e. some ALLOW (literal or prefixed) that no DENY dominates (InitProducerId asks
    /// whether an idempotent producer may WRITE any topic).
    pub fn authorize_by_resource_type<'a>(
        &self,
        acls: impl IntoIterator<Item = &'a StandardAcl> + Clone,
        who: Requester<'_>,
        op: AclOperation,
        resource_type: ResourceType,
    ) -> bool {
        if self.authorize(acls.clone(), who, op, resource_type, "hardcode") {
            return true;
        }
        let mut deny_literal = BTreeSet::new();
        let mut deny_prefixed = BTreeSet::new();
        let mut allow = Vec::new();
        for acl in acls {
            if acl.resource_type != resource_type
                || (acl.host != who.host && acl.host != WILDCARD)
                || (acl.principal != who.principal && acl.principal != WILDCARD_PRINCIPAL)
                || (acl.operation != op && acl.operation != AclOperation::All)
            {
                continue;
            }
            match (acl.permission_type, acl.pattern_type) {
                (AclPermissionType::Deny, PatternType::Literal) => {
                    if acl.resource_name == WILDCARD {
                        return false;
                    }
                    deny_literal.insert(acl.resource_name.as_str());
                }
                (AclPermissionType::Deny, PatternType::Prefixed) => {
                    deny_prefixed.insert(acl.resource_name.as_str());
                }
                (AclPermissionType::Allow, PatternType::Literal | PatternType::Prefixed) => {
                    allow.push(acl)
                }
                _ => {}
            }
        }
        if allow
            .iter()
            .any(|a| a.pattern_type == PatternType::Literal && a.resource_name == WILDCARD)
        {
            return true;
        }
        allow.iter().any(|a| {
            let name = a.resource_name.as_str();
            if a.pattern_type == PatternType::Literal && deny_literal.contains(name) {
                return false;
            }
            // A DENY whose prefix is a prefix of this ALLOW's name dominates it.
            !name
                .char_indices()
                .map(|(i, c)| &name[..i + c.len_utf8()])
                .any(|p| deny_prefixed.contains(p))
        })
    }

    /// AuthHelper.authorizedOperations: the bit field (bit n for operation code n) of the
    /// operations `supported` that are allowed on the resource (KIP-430).
    pub fn authorized_operations<'a>(
        &self,
        acls: impl IntoIterator<Item = &'a StandardAcl> + Clone,
        who: Requester<'_>,
        supported: i32,
        resource_type: ResourceType,
        name: &str,
    ) -> i32 {
        (0..32)
            .filter(|bit| supported & (1 << bit) != 0)
            .filter(|&bit| {
                let op = AclOperation::from_code(bit as i8);
                self.authorize(acls.clone(), who, op, resource_type, name)
            })
            .fold(0, |bits, bit| bits | (1 << bit))
    }
}

/// An address as Java's InetAddress.getHostAddress prints it, which is what ACL hosts are
/// compared with: IPv4 dotted, IPv6 as eight uncompressed hex groups (`0:0:0:0:0:0:0:1`).
pub fn host_address(ip: IpAddr) -> String {
    match ip {
        IpAddr::V4(v4) => v4.to_string(),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            // Java hands IPv4-mapped addresses over as Inet4Address.
            Some(v4) => v4.to_string(),
            None => v6
                .segments()
                .iter()
                .map(|s| format!("{s:x}"))
                .collect::<Vec<_>>()
                .join(":"),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use AclOperation::*;
    use ResourceType::*;

    fn acl(
        rt: ResourceType,
        name: &str,
        pattern: PatternType,
        principal: &str,
        host: &str,
        op: AclOperation,
        allow: bool,
    ) -> StandardAcl {
        StandardAcl {
            resource_type: rt,
            resource_name: name.into(),
            pattern_type: pattern,
            principal: principal.into(),
            host: host.into(),
            operation: op,
            permission_type: if allow {
                AclPermissionType::Allow
            } else {
                AclPermissionType::Deny
            },
        }
    }

    fn allow(rt: ResourceType, name: &str, principal: &str, op: AclOperation) -> StandardAcl {
        acl(rt, name, PatternType::Literal, principal, "*", op, true)
    }

    const ALICE: Requester<'static> = Requester {
        principal: "User:alice",
        host: "127.0.0.1",
    };
    const BOB: Requester<'static> = Requester {
        principal: "User:bob",
        host: "127.0.0.1",
    };

    #[test]
    fn literal_prefixed_and_wildcard_patterns() {
        let a = Authorizer::default();
        let acls = vec![
            allow(Topic, "orders", "User:alice", Read),
            acl(
                Topic,
                "logs-",
                PatternType::Prefixed,
                "User:alice",
                "*",
                Write,
                true,
            ),
            allow(Group, "*", "User:alice", Read),
        ];
        assert!(a.authorize(&acls, ALICE, Read, Topic, "orders"));
        assert!(!a.authorize(&acls, ALICE, Read, Topic, "orders2"));
        assert!(!a.authorize(&acls, ALICE, Write, Topic, "orders"));
        assert!(a.authorize(&acls, ALICE, Write, Topic, "logs-app"));
        assert!(!a.authorize(&acls, ALICE, Write, Topic, "logs"));
        assert!(a.authorize(&acls, ALICE, Read, Group, "any-group"));
        assert!(!a.authorize(&acls, BOB, Read, Topic, "orders"));
        // A topic no ACL names is denied unless allow.everyone.if.no.acl.found.
        assert!(!a.authorize(&acls, ALICE, Read, Topic, "other"));
        let open = Authorizer::new("", true);
        assert!(open.authorize(&acls, BOB, Read, Topic, "other"));
        // ... but a topic with ACLs for someone else is not open to bob.
        assert!(!open.authorize(&acls, BOB, Read, Topic, "orders"));
        // The wildcard applies to every group, so no group is "without ACLs".
        assert!(!open.authorize(&acls, BOB, Read, Group, "g"));
        // Resource types are separate.
        assert!(!a.authorize(&acls, ALICE, Read, TransactionalId, "orders"));
    }

    #[test]
    fn principals_and_hosts() {
        let a = Authorizer::default();
        let acls = vec![
            allow(Topic, "t", "User:*", Read),
            acl(
                Topic,
                "t",
                PatternType::Literal,
                "User:bob",
                "10.0.0.1",
                Write,
                true,
            ),
        ];
        assert!(a.authorize(&acls, ALICE, Read, Topic, "t"));
        assert!(a.authorize(&acls, BOB, Read, Topic, "t"));
        assert!(!a.authorize(&acls, BOB, Write, Topic, "t"));
        let from_there = Requester {
            principal: "User:bob",
            host: "10.0.0.1",
        };
        assert!(a.authorize(&acls, from_there, Write, Topic, "t"));
    }

    #[test]
    fn deny_wins_and_implied_operations() {
        let a = Authorizer::default();
        let mut acls = vec![
            allow(Topic, "t", "User:alice", All),
            allow(Topic, "c", "User:alice", AlterConfigs),
            allow(Topic, "w", "User:alice", Write),
        ];
        assert!(a.authorize(&acls, ALICE, Delete, Topic, "t"));
        assert!(a.authorize(&acls, ALICE, DescribeConfigs, Topic, "c"));
        assert!(!a.authorize(&acls, ALICE, Describe, Topic, "c"));
        assert!(a.authorize(&acls, ALICE, Describe, Topic, "w"));
        assert!(!a.authorize(&acls, ALICE, Read, Topic, "w"));
        acls.push(acl(
            Topic,
            "t",
            PatternType::Prefixed,
            "User:*",
            "*",
            Delete,
            false,
        ));
        assert!(!a.authorize(&acls, ALICE, Delete, Topic, "t"));
        assert!(a.authorize(&acls, ALICE, Read, Topic, "t"));
        // A DENY of WRITE does not deny DESCRIBE.
        acls.push(acl(
            Topic,
            "w",
            PatternType::Literal,
            "User:alice",
            "*",
            Write,
            false,
        ));
        assert!(!a.authorize(&acls, ALICE, Write, Topic, "w"));
        // (The ALLOW of WRITE still implies DESCRIBE.)
        assert!(a.authorize(&acls, ALICE, Describe, Topic, "w"));
        // DENY ALL denies everything.
        acls.push(acl(
            Topic,
            "*",
            PatternType::Literal,
            "User:alice",
            "*",
            All,
            false,
        ));
        assert!(!a.authorize(&acls, ALICE, Read, Topic, "t"));
    }

    #[test]
    fn super_users_pass_everything() {
        let a = Authorizer::new(" User:admin ; User:CN=root,O=acme;", false);
        assert_eq!(a.super_users.len(), 2);
        let deny = vec![acl(
            Cluster,
            CLUSTER_NAME,
            PatternType::Literal,
            "User:*",
            "*",
            All,
            false,
        )];
        let admin = Requester {
            principal: "User:CN=root,O=acme",
            host: "127.0.0.1",
        };
        assert!(a.authorize(&deny, admin, Alter, Cluster, CLUSTER_NAME));
        assert!(!a.authorize(&deny, ALICE, Alter, Cluster, CLUSTER_NAME));
    }

    #[test]
    fn by_resource_type() {
        let a = Authorizer::default();
        let none: Vec<StandardAcl> = vec![];
        assert!(!a.authorize_by_resource_type(&none, ALICE, Write, Topic));
        assert!(Authorizer::new("", true).authorize_by_resource_type(&none, ALICE, Write, Topic));
        let mut acls = vec![acl(
            Topic,
            "app-",
            PatternType::Prefixed,
            "User:alice",
            "*",
            Write,
            true,
        )];
        assert!(a.authorize_by_resource_type(&acls, ALICE, Write, Topic));
        assert!(!a.authorize_by_resource_type(&acls, BOB, Write, Topic));
        acls.push(acl(
            Topic,
            "app",
            PatternType::Prefixed,
            "User:alice",
            "*",
            Write,
            false,
        ));
        assert!(!a.authorize_by_resource_type(&acls, ALICE, Write, Topic));
        acls.push(allow(Topic, "other", "User:alice", All));
        assert!(a.authorize_by_resource_type(&acls, ALICE, Write, Topic));
    }

    #[test]
    fn filters() {
        let prefixed = acl(
            Topic,
            "app-",
            PatternType::Prefixed,
            "User:alice",
            "*",
            Write,
            true,
        );
        let any = AclFilter {
            resource_type: ResourceType::Any,
            resource_name: None,
            pattern_type: PatternType::Any,
            principal: None,
            host: None,
            operation: AclOperation::Any,
            permission_type: AclPermissionType::Any,
        };
        assert!(any.matches(&prefixed));
        let by_name = |name: &str, pattern| AclFilter {
            resource_name: Some(name.into()),
            pattern_type: pattern,
            ..any.clone()
        };
        assert!(by_name("app-", PatternType::Any).matches(&prefixed));
        assert!(!by_name("app-x", PatternType::Any).matches(&prefixed));
        assert!(by_name("app-x", PatternType::Match).matches(&prefixed));
        assert!(!by_name("app-", PatternType::Literal).matches(&prefixed));
        let alice_read = AclFilter {
            principal: Some("User:alice".into()),
            operation: Read,
            ..any.clone()
        };
        assert!(!alice_read.matches(&prefixed));
        assert_eq!(
            AclFilter {
                resource_type: ResourceType::Unknown,
                ..any.clone()
            }
            .unknown_part(),
            Some("Unknown patternFilter.")
        );
        assert_eq!(any.unknown_part(), None);
    }

    #[test]
    fn codes_round_trip_and_unknown_codes() {
        for c in 0..=15 {
            assert_eq!(AclOperation::from_code(c).code(), c);
        }
        assert_eq!(AclOperation::from_code(42), AclOperation::Unknown);
        assert_eq!(ResourceType::from_code(-1), ResourceType::Unknown);
        assert_eq!(PatternType::from_code(4), PatternType::Prefixed);
        assert_eq!(ResourceType::TransactionalId.name(), "TRANSACTIONAL_ID");
        assert_eq!(AclOperation::Read.name(), "READ");
    }

    #[test]
    fn hosts_as_java_prints_them() {
        assert_eq!(host_address("127.0.0.1".parse().unwrap()), "127.0.0.1");
        assert_eq!(host_address("::1".parse().unwrap()), "0:0:0:0:0:0:0:1");
        assert_eq!(host_address("::ffff:10.0.0.1".parse().unwrap()), "10.0.0.1");
    }

    #[test]
    fn authorized_operations_bits() {
        let a = Authorizer::default();
        let acls = vec![allow(Topic, "t", "User:alice", Read)];
        let topic_ops = crate::protocol::authorized::TOPIC_OPERATIONS;
        // READ (3) and the DESCRIBE (8) it implies.
        assert_eq!(
            a.authorized_operations(&acls, ALICE, topic_ops, Topic, "t"),
            (1 << 3) | (1 << 8)
        );
    }
}
